//! `jnlp_xml`, `node_xml` and `job_xml`: the XML the controller reads from users and agents,
//! through the hardened reader in `steward_protocol::xml`.

use steward_protocol::jnlp::{self, AgentLaunch, IV_LEN};
use steward_protocol::job_xml::JobConfig;
use steward_protocol::node_xml::{NodeConfig, validate_node_name};
use steward_protocol::secret::NodeSecret;
use steward_protocol::xml::{self, Element, Node};

/// The secret the encrypted-document mode decrypts with.
pub const JNLP_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// Separates the fields of the generated-document mode.
pub const FIELD_SEPARATOR: u8 = 0;

/// Input: a mode byte, then
/// - mode 0: a JNLP document, as an agent started with `-jnlpUrl` reads it;
/// - mode 1: an `?encrypt=true` body, decrypted with [`JNLP_SECRET`] then read;
/// - mode 2: the fields of an [`AgentLaunch`] (node name, secret, work dir, internal dir,
///   root URL, separated by [`FIELD_SEPARATOR`]): the document the controller writes for them
///   must give the agent back exactly its arguments, also through encryption.
pub fn jnlp_xml(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                read_arguments(text);
            }
        }
        1 => {
            let secret = NodeSecret::new(JNLP_SECRET);
            if let Ok(document) = jnlp::decrypt(&secret, rest) {
                // Decrypting then encrypting under the same IV gives the body back.
                let iv: [u8; IV_LEN] = rest[..IV_LEN].try_into().unwrap();
                assert_eq!(
                    jnlp::encrypt(&secret, iv, document.as_bytes()).as_deref(),
                    Ok(rest)
                );
                read_arguments(&document);
            }
        }
        _ => generated_document(rest),
    }
}

/// Reads the arguments; those read are written back as a document that reads the same.
fn read_arguments(text: &str) {
    let Ok(args) = jnlp::parse_arguments(text) else {
        return;
    };
    let mut desc = Element::new("application-desc");
    for arg in &args {
        desc.children
            .push(Node::Element(Element::with_text("argument", arg.clone())));
    }
    let mut root = Element::new("jnlp");
    root.children.push(Node::Element(desc));
    let written = write(&root);
    assert_eq!(
        jnlp::parse_arguments(&written).as_ref(),
        Ok(&args),
        "{written}"
    );
}

fn generated_document(fields: &[u8]) {
    let mut fields = fields
        .split(|&b| b == FIELD_SEPARATOR)
        .map(String::from_utf8_lossy);
    let mut next = || fields.next().unwrap_or_default().into_owned();
    let (node_name, secret, work_dir, internal_dir, root_url) =
        (next(), next(), next(), next(), next());
    let secret = NodeSecret::new(secret);
    let launch = AgentLaunch {
        node_name: &node_name,
        secret: &secret,
        web_socket: node_name.len() % 2 == 0,
        work_dir: (!work_dir.is_empty()).then_some((work_dir.as_str(), internal_dir.as_str())),
        root_url: &root_url,
    };
    let document = launch.document();
    assert_eq!(
        jnlp::parse_arguments(&document),
        Ok(launch.arguments()),
        "{document}"
    );
    if let Ok(body) = jnlp::encrypt(&secret, [7; IV_LEN], document.as_bytes()) {
        assert_eq!(jnlp::decrypt(&secret, &body), Ok(document));
    }
}

/// Input: node XML, as `create-node` reads it from stdin and the store reads it back.
pub fn node_xml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // The tree reader: whatever it accepts, our writer writes as a document it accepts again,
    // with the same elements, attributes and texts, and writing that changes nothing more
    // (the first write may re-indent and trim text between elements).
    if let Ok(root) = xml::parse_document(text) {
        let first = write(&root);
        let reread = xml::parse_document(&first)
            .unwrap_or_else(|e| panic!("our own output is refused: {e}\n{first}"));
        assert_eq!(Shape::of(&reread), Shape::of(&root), "{first}");
        assert_eq!(write(&reread), first, "a second write changed the document");
    }

    // Node config: what `get-node` prints, `create-node` takes back as the same node.
    if let Ok(node) = NodeConfig::from_xml(text) {
        let _ = validate_node_name(&node.name);
        let written = node.to_xml();
        let again = NodeConfig::from_xml(&written)
            .unwrap_or_else(|e| panic!("get-node output is refused: {e}\n{written}"));
        assert_eq!(again.to_xml(), written, "a second write changed the node");
        assert_eq!(settings(&again), settings(&node), "{written}");
        // The disk-space threshold reads the same from what was written back.
        let threshold = steward_protocol::disk_space::node_threshold(&node);
        assert_eq!(
            steward_protocol::disk_space::node_threshold(&again),
            threshold,
            "{written}"
        );
    }
}

/// Input: job XML, as `create-job` reads it from stdin and the store reads it back.
pub fn job_xml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(job) = JobConfig::from_xml(text) else {
        return;
    };
    // What `get-job` prints, `create-job` takes back as the same job: every field and every
    // element kept, in place.
    let written = job.to_xml();
    let again = JobConfig::from_xml(&written)
        .unwrap_or_else(|e| panic!("get-job output is refused: {e}\n{written}"));
    assert_eq!(again, job, "{written}");
    assert_eq!(again.to_xml(), written, "a second write changed the job");

    // What the scheduler asks of it: a build without `-p` gets the defaults, and each
    // default given back as a value is taken as it is.
    let _ = job.ignored();
    let defaults = job.parameter_defaults();
    assert_eq!(job.resolve_parameters(&[]).as_ref(), Ok(&defaults));
    assert_eq!(job.resolve_parameters(&defaults).as_ref(), Ok(&defaults));
}

/// The fields Steward interprets. The inbound-agent settings are written only for inbound
/// nodes, where they mean something.
fn settings(node: &NodeConfig) -> impl PartialEq + std::fmt::Debug {
    let inbound = node.is_inbound().then(|| {
        (
            node.web_socket,
            node.work_dir_disabled,
            node.internal_dir.clone(),
            node.fail_if_work_dir_is_missing,
        )
    });
    let shapes = |elements: &[Element]| elements.iter().map(Shape::of).collect::<Vec<_>>();
    (
        (
            node.name.clone(),
            node.description.clone(),
            node.remote_fs.clone(),
            node.num_executors,
            node.mode,
            node.labels.clone(),
            node.launcher.clone(),
            node.retention_strategy.clone(),
        ),
        inbound,
        shapes(&node.launcher_elements),
        shapes(&node.other_elements),
    )
}

/// What a write and a read must keep of an element: names, attributes, and the text of
/// elements holding only text. (Text between child elements is layout to the writer: it is
/// trimmed and re-indented.)
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    name: String,
    attributes: Vec<(String, String)>,
    text: Option<String>,
    children: Vec<Shape>,
}

impl Shape {
    fn of(e: &Element) -> Shape {
        let children: Vec<Shape> = e.child_elements().map(Shape::of).collect();
        Shape {
            name: e.name.clone(),
            attributes: e.attributes.clone(),
            text: children.is_empty().then(|| e.text()),
            children,
        }
    }
}

fn write(root: &Element) -> String {
    let mut out = String::new();
    root.write(&mut out, 0);
    out
}
