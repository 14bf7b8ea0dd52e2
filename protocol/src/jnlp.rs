//! JNLP documents (compat §3.2): what `/computer/NAME/jenkins-agent.jnlp` serves and what an
//! agent started with `-jnlpUrl` reads.
//!
//! The document carries the agent's command-line arguments as `<argument>` elements. With
//! `?encrypt=true` the body is a 16-byte IV followed by the document under AES-128/CFB8, keyed
//! by the first half of the node secret, so an agent holding only its secret can fetch it
//! without any permission.

use aes::Aes128;
use cfb8::cipher::{AsyncStreamCipher, KeyIvInit};

use crate::secret::NodeSecret;
use crate::xml::{self, Element, XmlError};

/// Content type of the plain document.
pub const JNLP_CONTENT_TYPE: &str = "application/x-java-jnlp-file";
/// Content type of the encrypted document.
pub const ENCRYPTED_CONTENT_TYPE: &str = "application/octet-stream";
/// Length of the IV that prefixes an encrypted document.
pub const IV_LEN: usize = 16;
/// Most `<argument>` elements accepted: Jenkins writes nine.
pub const MAX_ARGUMENTS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JnlpError {
    #[error("invalid JNLP document: {0}")]
    Xml(#[from] XmlError),
    #[error("invalid JNLP document: no <application-desc> element")]
    NoApplicationDesc,
    #[error("invalid JNLP document: more than {MAX_ARGUMENTS} arguments")]
    TooManyArguments,
    #[error("encrypted JNLP document is shorter than its {IV_LEN}-byte IV")]
    Truncated,
    #[error("cannot decrypt the JNLP document: the secret is not 64 hex characters")]
    BadSecret,
    #[error("decrypted JNLP document is not UTF-8: wrong secret?")]
    NotUtf8,
}

/// What the controller puts in an agent's JNLP document.
#[derive(Debug, Clone)]
pub struct AgentLaunch<'a> {
    pub node_name: &'a str,
    pub secret: &'a NodeSecret,
    pub web_socket: bool,
    /// `Some((work_dir, internal_dir))` unless work-dir is disabled on the node.
    pub work_dir: Option<(&'a str, &'a str)>,
    /// The controller's public root URL, with its trailing slash.
    pub root_url: &'a str,
}

impl AgentLaunch<'_> {
    /// The agent arguments in Jenkins' order: secret, name, `-webSocket`, work dir, `-url`.
    pub fn arguments(&self) -> Vec<String> {
        let mut args = vec![self.secret.expose().to_owned(), self.node_name.to_owned()];
        if self.web_socket {
            args.push("-webSocket".into());
        }
        if let Some((dir, internal)) = self.work_dir {
            args.extend([
                "-workDir".into(),
                dir.to_owned(),
                "-internalDir".into(),
                internal.to_owned(),
            ]);
        }
        args.extend(["-url".into(), self.root_url.to_owned()]);
        args
    }

    /// The JNLP document, as Jenkins lays it out. Its URLs are the root URL (already a URL)
    /// and the node's name percent-encoded as one path segment.
    pub fn document(&self) -> String {
        let codebase = format!(
            "{}computer/{}/",
            self.root_url,
            crate::names::url_segment(self.node_name)
        );
        let mut jnlp = Element::new("jnlp");
        jnlp.attributes = vec![
            ("codebase".into(), codebase),
            ("spec".into(), "1.0+".into()),
        ];
        let mut information = Element::new("information");
        information
            .children
            .push(xml::Node::Element(Element::with_text(
                "title",
                format!("Agent for {}", self.node_name),
            )));
        information
            .children
            .push(xml::Node::Element(Element::with_text("vendor", "Steward")));
        jnlp.children.push(xml::Node::Element(information));
        let mut resources = Element::new("resources");
        let mut jar = Element::new("jar");
        jar.attributes.push((
            "href".into(),
            format!("{}jnlpJars/agent.jar", self.root_url),
        ));
        resources.children.push(xml::Node::Element(jar));
        jnlp.children.push(xml::Node::Element(resources));
        let mut desc = Element::new("application-desc");
        desc.attributes
            .push(("main-class".into(), "hudson.remoting.jnlp.Main".into()));
        for arg in self.arguments() {
            desc.children
                .push(xml::Node::Element(Element::with_text("argument", arg)));
        }
        jnlp.children.push(xml::Node::Element(desc));
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        jnlp.write(&mut out, 0);
        out
    }
}

/// Reads the `<argument>` texts of a JNLP document, in order.
pub fn parse_arguments(document: &str) -> Result<Vec<String>, JnlpError> {
    let root = xml::parse_document(document)?;
    let desc = find(&root, "application-desc").ok_or(JnlpError::NoApplicationDesc)?;
    let args: Vec<String> = desc
        .child_elements()
        .filter(|e| e.name == "argument")
        .map(Element::text)
        .collect();
    if args.len() > MAX_ARGUMENTS {
        return Err(JnlpError::TooManyArguments);
    }
    Ok(args)
}

fn find<'a>(e: &'a Element, name: &str) -> Option<&'a Element> {
    if e.name == name {
        return Some(e);
    }
    e.child_elements().find_map(|c| find(c, name))
}

/// Encrypts a document for `?encrypt=true`: the IV, then AES-128/CFB8 of the document.
pub fn encrypt(
    secret: &NodeSecret,
    iv: [u8; IV_LEN],
    document: &[u8],
) -> Result<Vec<u8>, JnlpError> {
    let key = secret.jnlp_key().ok_or(JnlpError::BadSecret)?;
    let mut body = document.to_vec();
    cfb8::Encryptor::<Aes128>::new(&key.into(), &iv.into()).encrypt(&mut body);
    let mut out = Vec::with_capacity(IV_LEN + body.len());
    out.extend_from_slice(&iv);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decrypts a body served for `?encrypt=true`.
pub fn decrypt(secret: &NodeSecret, body: &[u8]) -> Result<String, JnlpError> {
    let key = secret.jnlp_key().ok_or(JnlpError::BadSecret)?;
    if body.len() < IV_LEN {
        return Err(JnlpError::Truncated);
    }
    let (iv, cipher) = body.split_at(IV_LEN);
    let iv: [u8; IV_LEN] = iv.try_into().expect("split at IV_LEN");
    let mut plain = cipher.to_vec();
    cfb8::Decryptor::<Aes128>::new(&key.into(), &iv.into()).decrypt(&mut plain);
    String::from_utf8(plain).map_err(|_| JnlpError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(secret: &NodeSecret) -> AgentLaunch<'_> {
        AgentLaunch {
            node_name: "linux-1",
            secret,
            web_socket: true,
            work_dir: Some(("/home/ci/agent", "remoting")),
            root_url: "https://ci.example.com/jenkins/",
        }
    }

    #[test]
    fn arguments_follow_jenkins_order() {
        let secret = NodeSecret::new("ab".repeat(32));
        assert_eq!(
            launch(&secret).arguments(),
            [
                &"ab".repeat(32),
                "linux-1",
                "-webSocket",
                "-workDir",
                "/home/ci/agent",
                "-internalDir",
                "remoting",
                "-url",
                "https://ci.example.com/jenkins/"
            ]
        );
    }

    #[test]
    fn document_round_trips_arguments() {
        let secret = NodeSecret::new("ab".repeat(32));
        let l = launch(&secret);
        assert_eq!(parse_arguments(&l.document()).unwrap(), l.arguments());
    }

    #[test]
    fn the_codebase_encodes_the_node_name() {
        let secret = NodeSecret::new("ab".repeat(32));
        let launch = AgentLaunch {
            node_name: "my node/α",
            ..launch(&secret)
        };
        let document = launch.document();
        let root = xml::parse_document(&document).unwrap();
        let codebase = root
            .attributes
            .iter()
            .find(|(name, _)| name == "codebase")
            .map(|(_, value)| value.as_str());
        assert_eq!(
            codebase,
            Some("https://ci.example.com/jenkins/computer/my%20node%2F%CE%B1/")
        );
        // The arguments keep the name as it is.
        assert_eq!(parse_arguments(&document).unwrap()[1], "my node/α");
    }

    #[test]
    fn cfb8_matches_nist_vector() {
        // NIST SP 800-38A F.3.7, CFB8-AES128.Encrypt (checked with `openssl enc -aes-128-cfb8`).
        let secret = NodeSecret::new(format!(
            "2b7e151628aed2a6abf7158809cf4f3c{}",
            "0".repeat(32)
        ));
        let iv: [u8; 16] = std::array::from_fn(|i| i as u8);
        let plain = hex::decode("6bc1bee22e409f96e93d7e117393172aae2d").unwrap();
        let out = encrypt(&secret, iv, &plain).unwrap();
        assert_eq!(
            hex::encode(&out[16..]),
            "3b79424c9c0dd436bace9e0ed4586a4f32b9"
        );
    }

    #[test]
    fn encrypted_document_round_trips() {
        let secret = NodeSecret::new("0123456789abcdef".repeat(4));
        let doc = launch(&secret).document();
        let body = encrypt(&secret, [9; 16], doc.as_bytes()).unwrap();
        assert_eq!(decrypt(&secret, &body).unwrap(), doc);
        assert_eq!(decrypt(&secret, &body[..5]), Err(JnlpError::Truncated));
    }

    #[test]
    fn doctype_is_refused() {
        let doc = "<!DOCTYPE jnlp SYSTEM \"http://evil/\"><jnlp><application-desc/></jnlp>";
        assert_eq!(parse_arguments(doc), Err(JnlpError::Xml(XmlError::Doctype)));
    }
}
