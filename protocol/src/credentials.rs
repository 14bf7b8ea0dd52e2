//! Credentials as the Jenkins credentials plugin's CLI speaks them: the XML that
//! `create-credentials-by-xml` and `update-credentials-by-xml` read and
//! `get-credentials-as-xml` prints ([`Credential`]), the store and domain arguments the
//! commands take and their failure messages ([`store`]), and the names and table of
//! `list-credentials` ([`list`]).
//!
//! - **Kinds.** Four, each named by its root element, the class name as XStream writes it:
//!   [`USERNAME_PASSWORD`] (credentials plugin), [`STRING_CREDENTIALS`] and
//!   [`FILE_CREDENTIALS`] (plain-credentials plugin), [`SSH_PRIVATE_KEY`] with the key
//!   entered directly (ssh-credentials plugin). Another root is refused, naming the four.
//! - **Secrets.** Passwords, secret texts, file contents, private keys and passphrases live
//!   in [`SecretString`] and [`SecretBytes`], which never print. A document holds them in
//!   plain text. Two other forms are refused: a value encrypted by another Jenkins
//!   (`{AQAAABAAAAAQ…}`, or braced base64 for a file), which only that Jenkins' master key
//!   opens, and `<secret-redacted/>`, what `get-credentials-as-xml` prints in place of a
//!   secret (Jenkins would store it as an empty secret).
//! - **Two writings.** [`Credential::to_xml_redacted`] is what `get-credentials-as-xml`
//!   prints: every secret replaced by `<secret-redacted/>`, the rest as Jenkins writes it.
//!   [`Credential::to_xml_stored`] holds the secrets in plain text, in the form
//!   [`Credential::from_xml`] reads back; it and the serde form are for the controller's
//!   store, which encrypts what it writes.
//! - **Text.** Secret text is taken as written, whitespace included, as Jenkins takes it.
//!   Other values are trimmed, and so is a private key: whitespace around a key is never
//!   part of it. Elements Steward does not know are ignored, as Jenkins' XStream skips them.
//! - **Ids.** Jenkins' rule for ids typed in its form, `[a-zA-Z0-9_.-]+`, holds for every
//!   id here, up to [`MAX_ID_LEN`]. A document without an id reads with an empty one: Jenkins
//!   gives such a credential a random UUID, which the controller must do (this crate has no
//!   randomness).

pub mod list;
mod read;
mod secret;
pub mod store;
#[cfg(test)]
mod tests;

pub use secret::{SecretBytes, SecretString};

use crate::shown::shown;
use crate::xml::{Element, Node, XmlError};

/// Root element of a username with a password.
pub const USERNAME_PASSWORD: &str =
    "com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl";
/// Root element of a secret text.
pub const STRING_CREDENTIALS: &str =
    "org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl";
/// Root element of a secret file.
pub const FILE_CREDENTIALS: &str =
    "org.jenkinsci.plugins.plaincredentials.impl.FileCredentialsImpl";
/// Root element of an SSH username with a private key.
pub const SSH_PRIVATE_KEY: &str =
    "com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey";
/// The `class` of the one `<privateKeySource>` Steward reads: the key itself in the XML.
pub const DIRECT_ENTRY_KEY_SOURCE: &str = "com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey$DirectEntryPrivateKeySource";
/// The element `get-credentials-as-xml` writes in place of each secret.
pub const SECRET_REDACTED: &str = "secret-redacted";

/// Longest credentials id. Jenkins sets no limit; ids are names users type in jobs, and the
/// ones Jenkins generates are 36-character UUIDs. 128 leaves room for any real id and keeps
/// ids short in messages and in the `list-credentials` table.
pub const MAX_ID_LEN: usize = 128;
/// Longest description: a sentence or a paragraph, kept to what a table line can show.
pub const MAX_DESCRIPTION_LEN: usize = 4096;
/// Longest username. Real ones are short; this bounds what a table line and a build's
/// environment carry.
pub const MAX_USERNAME_LEN: usize = 1024;
/// Longest secret file name: the longest name most file systems take, since the agent writes
/// the file under it.
pub const MAX_FILE_NAME_LEN: usize = 255;
/// Longest secret text (password, secret text, private key, passphrase): what a build's
/// console can mask ([`crate::mask::MAX_SECRET_LEN`]), well above any key (an 8192-bit RSA
/// key is about 6.5 KiB).
pub const MAX_SECRET_TEXT_LEN: usize = crate::mask::MAX_SECRET_LEN;
/// Largest secret file. Secret files are keystores, kubeconfigs and key files of a few KiB;
/// their base64 must also fit in a document of [`crate::xml::MAX_XML_BYTES`].
pub const MAX_SECRET_FILE_LEN: usize = 512 * 1024;

/// Who may use a credential: Jenkins and its jobs (`GLOBAL`, the default), or Jenkins and
/// its nodes only (`SYSTEM`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scope {
    #[default]
    Global,
    System,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Global => "GLOBAL",
            Scope::System => "SYSTEM",
        }
    }
}

/// A credential of the system store's global domain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credential {
    /// Empty only when read from a document without one (see the module doc).
    pub id: String,
    pub description: String,
    pub scope: Scope,
    pub kind: CredentialKind,
}

/// What a credential holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CredentialKind {
    UsernamePassword {
        username: String,
        password: SecretString,
        /// `<usernameSecret>`: whether a build masks the username too. Absent, Jenkins
        /// takes it as `true` (credentials written before the flag existed); see
        /// [`CredentialKind::username_is_secret`].
        username_secret: Option<bool>,
    },
    SecretText {
        secret: SecretString,
    },
    SecretFile {
        /// A plain file name, under which a build finds the content.
        file_name: String,
        content: SecretBytes,
    },
    SshPrivateKey {
        username: String,
        /// As for [`CredentialKind::UsernamePassword`].
        username_secret: Option<bool>,
        /// One key in OpenSSH or PEM form (Jenkins separates several with a form feed).
        private_key: SecretString,
        /// `None` for a key without one; Jenkins stores an empty passphrase as none.
        passphrase: Option<SecretString>,
    },
}

impl CredentialKind {
    /// Whether a build masks the username: `<usernameSecret>`, `true` when absent. Kinds
    /// without a username have none to mask.
    pub fn username_is_secret(&self) -> bool {
        match self {
            CredentialKind::UsernamePassword {
                username_secret, ..
            }
            | CredentialKind::SshPrivateKey {
                username_secret, ..
            } => username_secret.unwrap_or(true),
            CredentialKind::SecretText { .. } | CredentialKind::SecretFile { .. } => false,
        }
    }
}

/// Why a credentials document or id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error(
        "Steward does not know the credentials class <{0}>; it knows {USERNAME_PASSWORD}, \
         {STRING_CREDENTIALS}, {FILE_CREDENTIALS} and {SSH_PRIVATE_KEY}"
    )]
    UnknownKind(String),
    #[error(
        "<privateKeySource class=\"{0}\"> is not supported: Steward reads a key entered \
         directly, class=\"{DIRECT_ENTRY_KEY_SOURCE}\" with the key in <privateKey>"
    )]
    UnsupportedKeySource(String),
    #[error("<{element}> is missing: {kind} credentials need it")]
    Missing {
        element: &'static str,
        kind: &'static str,
    },
    #[error(
        "<{0}> holds <secret-redacted/>, which get-credentials-as-xml prints in place of a \
         secret: put the secret itself in the XML"
    )]
    Redacted(&'static str),
    #[error(
        "<{0}> holds a secret encrypted by another Jenkins ({{…}}), which only that Jenkins' \
         master key can decrypt: put the secret in the XML in plain text (Steward encrypts \
         what it stores)"
    )]
    Encrypted(&'static str),
    #[error("<{0}> must hold text, not elements")]
    NotText(&'static str),
    #[error("<{element}> is {len} bytes, over the limit of {max} bytes")]
    TooLong {
        element: &'static str,
        len: usize,
        max: usize,
    },
    #[error("invalid scope {0:?}: expected GLOBAL or SYSTEM")]
    BadScope(String),
    #[error("invalid credentials id {id:?}: {reason}")]
    BadId { id: String, reason: &'static str },
    /// The decoder's reason is left out: it would quote the secret's characters.
    #[error("<secretBytes> must be the file's content in base64")]
    BadBase64,
    #[error("invalid secret file name {name:?}: {reason}")]
    BadFileName { name: String, reason: &'static str },
    #[error("invalid <{element}> {value:?}: expected true or false")]
    BadBool {
        element: &'static str,
        value: String,
    },
}

/// Longest user value quoted back in an error: errors are one line.
const MAX_QUOTED: usize = 80;

/// `value` as an error quotes it: its start, with hidden characters escaped.
fn quoted(value: &str) -> String {
    let start: String = value.chars().take(MAX_QUOTED).collect();
    shown(&start).into_owned()
}

/// Checks an id against Jenkins' rule (`[a-zA-Z0-9_.-]+`) and [`MAX_ID_LEN`].
pub fn validate_id(id: &str) -> Result<(), CredentialError> {
    let bad = |reason| CredentialError::BadId {
        id: quoted(id),
        reason,
    };
    if id.is_empty() {
        return Err(bad("an id cannot be empty"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(bad(
            "Unacceptable characters (an id takes letters, digits, '_', '.' and '-')",
        ));
    }
    // The id is ASCII by now: bytes are characters.
    if id.len() > MAX_ID_LEN {
        return Err(bad("longer than 128 characters"));
    }
    Ok(())
}

/// How secrets are written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writing {
    /// As `<secret-redacted/>`.
    Redacted,
    /// In plain text.
    Stored,
}

impl Credential {
    /// The root element (Java class) of this kind.
    pub fn class_name(&self) -> &'static str {
        match self.kind {
            CredentialKind::UsernamePassword { .. } => USERNAME_PASSWORD,
            CredentialKind::SecretText { .. } => STRING_CREDENTIALS,
            CredentialKind::SecretFile { .. } => FILE_CREDENTIALS,
            CredentialKind::SshPrivateKey { .. } => SSH_PRIVATE_KEY,
        }
    }

    /// Reads a credentials document, as `create-credentials-by-xml` and
    /// `update-credentials-by-xml` do.
    pub fn from_xml(document: &str) -> Result<Credential, CredentialError> {
        read::credential(document)
    }

    /// What `get-credentials-as-xml` prints: each secret as `<secret-redacted/>`. Jenkins
    /// adds `plugin="…"` to the root element, which Steward, having no plugin versions,
    /// leaves out.
    pub fn to_xml_redacted(&self) -> String {
        self.to_xml(Writing::Redacted)
    }

    /// The document with the secrets in plain text, which [`Credential::from_xml`] reads back
    /// as this credential (a NUL, which no XML holds, comes back as U+FFFD). For the
    /// controller's encrypted store only: it never goes to a log or a client.
    pub fn to_xml_stored(&self) -> String {
        self.to_xml(Writing::Stored)
    }

    fn to_xml(&self, writing: Writing) -> String {
        let mut root = Element::new(self.class_name());
        let mut push = |e: Element| root.children.push(Node::Element(e));
        push(Element::with_text("scope", self.scope.as_str()));
        push(Element::with_text("id", &self.id));
        push(Element::with_text("description", &self.description));
        let secret = |name: &str, value: &str| match writing {
            Writing::Redacted => {
                let mut e = Element::new(name);
                e.children
                    .push(Node::Element(Element::new(SECRET_REDACTED)));
                e
            }
            Writing::Stored => Element::with_text(name, value),
        };
        let username_secret =
            |flag: &Option<bool>| flag.map(|f| Element::with_text("usernameSecret", f.to_string()));
        // Fields in the order XStream writes them: superclass fields first, then each
        // class's in declaration order.
        match &self.kind {
            CredentialKind::UsernamePassword {
                username,
                password,
                username_secret: flag,
            } => {
                push(Element::with_text("username", username));
                push(secret("password", password.expose()));
                if let Some(e) = username_secret(flag) {
                    push(e);
                }
            }
            CredentialKind::SecretText { secret: value } => push(secret("secret", value.expose())),
            CredentialKind::SecretFile { file_name, content } => {
                push(Element::with_text("fileName", file_name));
                push(secret("secretBytes", &content.to_base64()));
            }
            CredentialKind::SshPrivateKey {
                username,
                username_secret: flag,
                private_key,
                passphrase,
            } => {
                push(Element::with_text("username", username));
                if let Some(e) = username_secret(flag) {
                    push(e);
                }
                if let Some(passphrase) = passphrase {
                    push(secret("passphrase", passphrase.expose()));
                }
                let mut source = Element::new("privateKeySource");
                source
                    .attributes
                    .push(("class".into(), DIRECT_ENTRY_KEY_SOURCE.into()));
                source
                    .children
                    .push(Node::Element(secret("privateKey", private_key.expose())));
                push(source);
            }
        }
        let mut out = String::new();
        root.write(&mut out, 0);
        out
    }
}
