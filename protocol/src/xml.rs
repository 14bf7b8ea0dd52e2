//! A small, hardened XML tree reader and writer shared by JNLP and node XML.
//!
//! Documents come from the network or stdin, so reading refuses DOCTYPE (no entity
//! expansion, no external fetches) and bounds size, depth and element count before the
//! tree is built. Unknown elements survive a read/write round trip.
//!
//! Every character a value can hold survives it too, as in XML 1.1, which `get-node` and
//! `get-job` declare: the writer turns control characters (CR included) into character
//! references (`&#x1b;`), the reader turns them back and treats a raw CR or CRLF as a line
//! end, as XML requires. NUL is the one character no XML document can hold: the reader
//! refuses it, raw or as a reference.

use std::borrow::Cow;
use std::fmt::Write;

use std::collections::HashSet;

use quick_xml::Reader;
use quick_xml::escape::{EscapeError, ParseCharRefError};
use quick_xml::events::Event;

use crate::shown;

/// Largest XML document accepted: node and job configs are a few KiB.
pub const MAX_XML_BYTES: usize = 1 << 20;
/// Deepest element nesting accepted; real configs nest a handful of levels.
pub const MAX_XML_DEPTH: usize = 64;
/// Most elements accepted in one document.
pub const MAX_XML_ELEMENTS: usize = 20_000;
/// Most attributes on one element. Jenkins writes one or two (`plugin`, `class`); 256 leaves
/// room for any hand-written config while keeping one element's attributes small.
pub const MAX_XML_ATTRIBUTES_PER_ELEMENT: usize = 256;
/// Most attributes in one document: as many as elements, since Jenkins writes at most one or
/// two on a few elements; bounds the memory a 1 MiB document of short attributes can take.
pub const MAX_XML_ATTRIBUTES: usize = MAX_XML_ELEMENTS;

/// Why a document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("XML document of {0} bytes is over the limit of {MAX_XML_BYTES} bytes")]
    TooLarge(usize),
    #[error("DOCTYPE is not allowed in XML documents")]
    Doctype,
    #[error("XML cannot hold the character NUL (U+0000), raw or as a reference (byte {0})")]
    Nul(u64),
    #[error("XML nests deeper than {MAX_XML_DEPTH} elements")]
    TooDeep,
    #[error("XML has more than {MAX_XML_ELEMENTS} elements")]
    TooManyElements,
    #[error("<{0}> has more than {MAX_XML_ATTRIBUTES_PER_ELEMENT} attributes")]
    TooManyAttributesOnElement(String),
    #[error("XML has more than {MAX_XML_ATTRIBUTES} attributes")]
    TooManyAttributes,
    #[error("malformed XML at byte {position}: {reason}")]
    Syntax { position: u64, reason: String },
    #[error("XML document has no root element")]
    NoRoot,
    #[error("expected root element <{expected}>, found <{found}>")]
    UnexpectedRoot { expected: String, found: String },
    #[error("invalid value {value:?} in <{element}>: {reason}")]
    BadValue {
        element: String,
        value: String,
        reason: String,
    },
    #[error("missing element <{0}>")]
    Missing(String),
    #[error("<{element}> appears more than once in <{parent}>")]
    Duplicate { element: String, parent: String },
    #[error("Steward runs freestyle jobs (<project>); this is <{0}>")]
    NotFreestyleJob(String),
}

/// Longest bad value quoted back in an error.
const MAX_QUOTED_VALUE: usize = 80;

impl XmlError {
    /// A [`XmlError::BadValue`] quoting at most the start of `value`: a config may hold
    /// megabytes in one element, and the error goes back to the user in one line.
    pub(crate) fn bad_value(element: &str, value: &str, reason: impl Into<String>) -> XmlError {
        XmlError::BadValue {
            element: element.into(),
            value: value.chars().take(MAX_QUOTED_VALUE).collect(),
            reason: reason.into(),
        }
    }
}

/// An element with its attributes and children, in document order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    pub fn new(name: impl Into<String>) -> Self {
        Element {
            name: name.into(),
            ..Default::default()
        }
    }

    /// An element holding only text.
    pub fn with_text(name: impl Into<String>, text: impl Into<String>) -> Self {
        let mut e = Element::new(name);
        e.children.push(Node::Text(text.into()));
        e
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn child_elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.child_elements().find(|e| e.name == name)
    }

    /// The concatenated text directly inside this element.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }

    /// The one child `name`, if any; a second one is [`XmlError::Duplicate`].
    pub fn only_child(&self, name: &str) -> Result<Option<&Element>, XmlError> {
        let mut found = self.child_elements().filter(|e| e.name == name);
        let first = found.next();
        if first.is_some() && found.next().is_some() {
            return Err(XmlError::Duplicate {
                element: name.into(),
                parent: self.name.clone(),
            });
        }
        Ok(first)
    }

    /// Text of the child `name`, trimmed; `None` when the child is absent.
    pub fn child_text(&self, name: &str) -> Option<String> {
        self.child(name).map(|e| e.text().trim().to_owned())
    }

    /// Puts the element in the form a [`write`](Element::write) and a [`parse_document`]
    /// give back, at any depth: adjacent texts (split by a comment or CDATA) are merged and
    /// empty ones dropped; text between child elements, which the writer re-indents, is
    /// trimmed line by line, without blank lines. Models that keep elements verbatim use it
    /// so that what they read equals what they read back after writing it.
    pub fn normalize(&mut self) {
        let mixed = self.child_elements().next().is_some();
        let mut children: Vec<Node> = Vec::with_capacity(self.children.len());
        for child in std::mem::take(&mut self.children) {
            match (child, children.last_mut()) {
                (Node::Text(t), Some(Node::Text(previous))) => previous.push_str(&t),
                (Node::Element(mut e), _) => {
                    e.normalize();
                    children.push(Node::Element(e));
                }
                (text, _) => children.push(text),
            }
        }
        for child in &mut children {
            if let Node::Text(t) = child
                && mixed
            {
                let lines: Vec<&str> = t.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
                *t = lines.join("\n");
            }
        }
        children.retain(|n| !matches!(n, Node::Text(t) if t.is_empty()));
        self.children = children;
    }

    /// Writes the element as XML, indented by `depth` levels of two spaces. Elements holding
    /// only text stay on one line; whitespace-only text between elements is re-indented.
    pub fn write(&self, out: &mut String, depth: usize) {
        let indent = "  ".repeat(depth);
        out.push_str(&indent);
        out.push('<');
        out.push_str(&self.name);
        for (k, v) in &self.attributes {
            out.push(' ');
            out.push_str(k);
            out.push_str("=\"");
            escape_into(v, out, true);
            out.push('"');
        }
        let has_elements = self.child_elements().next().is_some();
        let text = self.text();
        if !has_elements && text.is_empty() {
            out.push_str("/>\n");
            return;
        }
        out.push('>');
        if !has_elements {
            escape_into(&text, out, false);
        } else {
            out.push('\n');
            for child in &self.children {
                match child {
                    Node::Element(e) => e.write(out, depth + 1),
                    Node::Text(t) if t.trim().is_empty() => {}
                    Node::Text(t) => {
                        out.push_str(&"  ".repeat(depth + 1));
                        escape_into(t.trim(), out, false);
                        out.push('\n');
                    }
                }
            }
            out.push_str(&indent);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push_str(">\n");
    }
}

/// Escapes text for XML 1.1, as Jenkins' XStream writes it: `&`, `<`, `>` (and `"` in
/// attributes) as entities; every control character but tab and line feed as a character
/// reference in lower-case hex (`&#x1b;`, `&#xd;`), which XML 1.1 requires for most of them
/// and which keeps a CR a CR (raw, a reader takes it for a line end). The characters
/// [`shown::is_hidden`] names besides (bidirectional controls, line separators) are
/// references too, so the XML shows them on a terminal instead of obeying them. In attributes
/// tab and line feed are references as well (a reader would make them spaces). NUL, which no
/// XML can hold, is written as U+FFFD; [`parse_document`] refuses it.
pub fn escape_into(text: &str, out: &mut String, attribute: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            // Not characters XML can hold, raw or referenced (NUL, and the two noncharacters
            // XML excludes): they become U+FFFD.
            '\0' | '\u{fffe}' | '\u{ffff}' => out.push(char::REPLACEMENT_CHARACTER),
            '\t' | '\n' if !attribute => out.push(c),
            // Writing to a String cannot fail.
            c if shown::is_hidden(c) => {
                let _ = write!(out, "&#x{:x};", u32::from(c));
            }
            _ => out.push(c),
        }
    }
}

/// A document stored before NUL was refused, readable again: each NUL becomes U+FFFD, as
/// [`escape_into`] writes it now.
pub fn stored_without_nul(xml: &str) -> Cow<'_, str> {
    if xml.contains('\0') {
        Cow::Owned(xml.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(xml)
    }
}

/// Line ends as an XML reader sees them (XML 1.0 §2.11): CRLF and a lone CR become LF. A CR
/// meant as a character comes as `&#xd;`, which is resolved after this.
fn normalize_line_ends(xml: &str) -> Cow<'_, str> {
    if xml.contains('\r') {
        Cow::Owned(xml.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(xml)
    }
}

/// A reference that could not be resolved: `&#0;` is a NUL, with its own error.
fn unescape_error(reader: &Reader<&[u8]>, e: quick_xml::Error) -> XmlError {
    match e {
        quick_xml::Error::Escape(EscapeError::InvalidCharRef(
            ParseCharRefError::IllegalCharacter(0),
        )) => XmlError::Nul(reader.buffer_position()),
        e => XmlError::Syntax {
            position: reader.buffer_position(),
            reason: e.to_string(),
        },
    }
}

/// Parses a whole document into its root element, enforcing the limits above.
pub fn parse_document(xml: &str) -> Result<Element, XmlError> {
    if xml.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge(xml.len()));
    }
    if let Some(at) = xml.find('\0') {
        return Err(XmlError::Nul(at as u64));
    }
    let xml = normalize_line_ends(xml);
    let mut reader = Reader::from_str(&xml);
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    let mut attributes = 0usize;
    let syntax = |reader: &Reader<&[u8]>, reason: String| XmlError::Syntax {
        position: reader.buffer_position(),
        reason,
    };
    loop {
        let event = reader
            .read_event()
            .map_err(|e| syntax(&reader, e.to_string()))?;
        match event {
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                let _ = start;
                return Err(syntax(&reader, "content after the root element".into()));
            }
            Event::Start(ref start) | Event::Empty(ref start) => {
                elements += 1;
                if elements > MAX_XML_ELEMENTS {
                    return Err(XmlError::TooManyElements);
                }
                if stack.len() >= MAX_XML_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                check_name(&name, "element").map_err(|reason| syntax(&reader, reason))?;
                let mut element = Element::new(name);
                // quick-xml's own duplicate check compares each attribute with every one
                // before it: 80,000 attributes took 15 s. A set makes it linear.
                let mut keys = HashSet::new();
                for attr in start.attributes().with_checks(false) {
                    let attr = attr.map_err(|e| syntax(&reader, e.to_string()))?;
                    if element.attributes.len() == MAX_XML_ATTRIBUTES_PER_ELEMENT {
                        return Err(XmlError::TooManyAttributesOnElement(quoted_name(
                            &element.name,
                        )));
                    }
                    attributes += 1;
                    if attributes > MAX_XML_ATTRIBUTES {
                        return Err(XmlError::TooManyAttributes);
                    }
                    let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
                    check_name(&key, "attribute").map_err(|reason| syntax(&reader, reason))?;
                    if !keys.insert(key.clone()) {
                        let reason = format!(
                            "attribute {:?} appears more than once in <{}>",
                            quoted_name(&key),
                            quoted_name(&element.name)
                        );
                        return Err(syntax(&reader, reason));
                    }
                    let value = attr
                        .unescape_value()
                        .map_err(|e| unescape_error(&reader, e))?;
                    element.attributes.push((key, value.into_owned()));
                }
                if matches!(event, Event::Empty(_)) {
                    close(&mut stack, &mut root, element);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let element = stack
                    .pop()
                    .ok_or_else(|| syntax(&reader, "unexpected end tag".into()))?;
                close(&mut stack, &mut root, element);
            }
            Event::Text(text) => {
                let text = text.unescape().map_err(|e| unescape_error(&reader, e))?;
                push_text(&mut stack, &text, &reader)?;
            }
            Event::CData(data) => {
                let text = String::from_utf8_lossy(&data).into_owned();
                push_text(&mut stack, &text, &reader)?;
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(syntax(
            &reader,
            format!(
                "unclosed element <{}>",
                stack.last().map_or("", |e| &e.name)
            ),
        ));
    }
    root.ok_or(XmlError::NoRoot)
}

/// Longest invalid name quoted back in an error.
const MAX_QUOTED_NAME: usize = 64;

/// Refuses element and attribute names that are not XML names (XML 1.0 §2.3). quick-xml
/// takes whatever follows `<` up to the first blank as the name, even nothing (`<\r/>`); such
/// an element would be written back as `</>`, which no reader takes, so a stored node holding
/// one could never be read again.
fn check_name(name: &str, what: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(is_name_start_char) && chars.all(is_name_char);
    if valid {
        Ok(())
    } else {
        Err(format!("invalid {what} name {:?}", quoted_name(name)))
    }
}

/// At most the first [`MAX_QUOTED_NAME`] characters of `name`, for an error.
fn quoted_name(name: &str) -> String {
    name.chars().take(MAX_QUOTED_NAME).collect()
}

/// XML 1.0 `NameStartChar`.
fn is_name_start_char(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}' | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 `NameChar`.
fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c,
            '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Attaches a finished element to its parent. Whitespace between child elements is layout,
/// not content, so it is dropped; text inside text-only elements is kept as written.
fn close(stack: &mut [Element], root: &mut Option<Element>, mut element: Element) {
    if element.child_elements().next().is_some() {
        element
            .children
            .retain(|n| !matches!(n, Node::Text(t) if t.trim().is_empty()));
    }
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

fn push_text(stack: &mut [Element], text: &str, reader: &Reader<&[u8]>) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(Node::Text(text.to_owned()));
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(XmlError::Syntax {
            position: reader.buffer_position(),
            reason: "text outside the root element".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doctype_is_refused() {
        let xml = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><slave><name>&a;</name></slave>"#;
        assert_eq!(parse_document(xml), Err(XmlError::Doctype));
    }

    #[test]
    fn limits_are_enforced() {
        let deep = "<a>".repeat(MAX_XML_DEPTH + 1) + &"</a>".repeat(MAX_XML_DEPTH + 1);
        assert_eq!(parse_document(&deep), Err(XmlError::TooDeep));
        let big = format!("<a>{}</a>", "x".repeat(MAX_XML_BYTES));
        assert!(matches!(parse_document(&big), Err(XmlError::TooLarge(_))));
        let many = format!("<a>{}</a>", "<b/>".repeat(MAX_XML_ELEMENTS));
        assert_eq!(parse_document(&many), Err(XmlError::TooManyElements));
    }

    /// `<project><a a0='1' … a{n-1}='1'/></project>`.
    fn attributes(n: usize) -> String {
        let list: Vec<String> = (0..n).map(|i| format!("a{i}='1'")).collect();
        format!("<project><a {}/></project>", list.join(" "))
    }

    #[test]
    fn attributes_are_bounded_per_element_and_per_document() {
        // 869 KB, under the size limit: once 15 s of duplicate checks, now refused at the
        // 257th attribute.
        let huge = attributes(80_000);
        assert!(huge.len() < MAX_XML_BYTES);
        let err = parse_document(&huge).unwrap_err();
        assert_eq!(err, XmlError::TooManyAttributesOnElement("a".into()));
        assert_eq!(err.to_string(), "<a> has more than 256 attributes");
        let most = parse_document(&attributes(MAX_XML_ATTRIBUTES_PER_ELEMENT)).unwrap();
        let a = most.child("a").unwrap();
        assert_eq!(a.attributes.len(), MAX_XML_ATTRIBUTES_PER_ELEMENT);
        assert_eq!(a.attribute("a255"), Some("1"));
        assert!(parse_document(&attributes(MAX_XML_ATTRIBUTES_PER_ELEMENT + 1)).is_err());

        let per_element = MAX_XML_ATTRIBUTES_PER_ELEMENT - 1;
        let elements = MAX_XML_ATTRIBUTES / per_element + 1;
        let one: Vec<String> = (0..per_element).map(|i| format!("b{i}=''")).collect();
        let many = format!(
            "<r>{}</r>",
            format!("<e {}/>", one.join(" ")).repeat(elements)
        );
        assert!(many.len() < MAX_XML_BYTES);
        assert_eq!(parse_document(&many), Err(XmlError::TooManyAttributes));
    }

    #[test]
    fn duplicate_attributes_are_refused() {
        let err = parse_document("<a x='1' y='2' x='3'/>").unwrap_err();
        assert!(
            matches!(&err, XmlError::Syntax { reason, .. }
                if reason == "attribute \"x\" appears more than once in <a>"),
            "{err:?}"
        );
        // Same local name, other prefix: two attributes, as XML 1.0 reads them.
        assert!(parse_document("<a x='1' p:x='2'/>").is_ok());
    }

    #[test]
    fn malformed_documents_name_the_problem() {
        for bad in ["<a><b></a>", "<a>", "", "text", "<a/><b/>"] {
            let err = parse_document(bad).unwrap_err();
            assert!(
                matches!(err, XmlError::Syntax { .. } | XmlError::NoRoot),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn names_must_be_xml_names() {
        // Found by the node_xml fuzz target: a nameless element was read, then written
        // back as `</>`.
        for bad in [
            "<\r/>",
            "< />",
            "<a><\t/></a>",
            "<1a/>",
            "<a b\u{7f}=\"1\"/>",
        ] {
            let err = parse_document(bad).unwrap_err();
            assert!(
                matches!(&err, XmlError::Syntax { reason, .. } if reason.contains("name")),
                "{bad:?}: {err:?}"
            );
        }
        let ok = "<hudson.slaves.RetentionStrategy_-Always x:y=\"1\"><ünï·1/></hudson.slaves.RetentionStrategy_-Always>";
        assert!(parse_document(ok).is_ok());
    }

    #[test]
    fn normalized_elements_survive_a_write_and_a_read() {
        let xml = "<root><a>x<!-- c -->y<![CDATA[<z>]]></a><m>\n  one\n    two  <b/><!-- c --> three<c>t</c>\r\n</m><e><![CDATA[]]></e></root>";
        let mut root = parse_document(xml).unwrap();
        root.normalize();
        assert_eq!(root.child_text("a").as_deref(), Some("xy<z>"));
        assert_eq!(root.child("e"), Some(&Element::new("e")));
        for depth in [0, 3] {
            let mut out = String::new();
            root.write(&mut out, depth);
            let mut again = parse_document(&out).unwrap();
            again.normalize();
            assert_eq!(again, root, "{out}");
        }
    }

    #[test]
    fn control_characters_are_references_and_read_back() {
        let value =
            "red \u{1b}[31m bell\u{7} cr\r lf\n tab\t del\u{7f} nel\u{85} rlo\u{202e} ls\u{2028} é";
        let mut root = Element::with_text("description", value);
        root.attributes.push(("a".into(), value.into()));
        let mut out = String::new();
        root.write(&mut out, 0);
        assert_eq!(
            out,
            "<description a=\"red &#x1b;[31m bell&#x7; cr&#xd; lf&#xa; tab&#x9; del&#x7f; nel&#x85; rlo&#x202e; ls&#x2028; é\">\
             red &#x1b;[31m bell&#x7; cr&#xd; lf\n tab\t del&#x7f; nel&#x85; rlo&#x202e; ls&#x2028; é</description>\n"
        );
        assert_eq!(parse_document(&out).unwrap(), root);
    }

    #[test]
    fn raw_line_ends_are_line_feeds() {
        let root = parse_document("<a b=\"1\r\n2\">x\r\ny\rz&#xD;&#xd;\n</a>").unwrap();
        assert_eq!(root.text(), "x\ny\nz\r\r\n");
        assert_eq!(root.attribute("b"), Some("1\n2"));
    }

    #[test]
    fn nul_is_refused_raw_or_as_a_reference_and_never_written() {
        for bad in [
            "<a>x\0</a>",
            "<a>&#0;</a>",
            "<a>&#x0;</a>",
            "<a b=\"&#x00;\"/>",
        ] {
            let err = parse_document(bad).unwrap_err();
            assert!(matches!(err, XmlError::Nul(_)), "{bad:?}: {err:?}");
            assert!(err.to_string().contains("NUL"), "{err}");
        }
        let mut out = String::new();
        Element::with_text("a", "x\0y").write(&mut out, 0);
        assert_eq!(out, "<a>x\u{fffd}y</a>\n");
        assert!(parse_document(&out).is_ok());
        // Nor the two noncharacters XML leaves out.
        let mut out = String::new();
        Element::with_text("a", "x\u{fffe}\u{ffff}y").write(&mut out, 0);
        assert_eq!(out, "<a>x\u{fffd}\u{fffd}y</a>\n");
    }

    proptest::proptest! {
        #[test]
        fn any_text_without_nul_survives_a_write_and_a_read(text in "\\PC*|[\\x00-\\x{a0}\\u{2028}\\u{202e}]*") {
            let text = text.replace('\0', "");
            let mut root = Element::with_text("v", text.clone());
            root.attributes.push(("a".into(), text.clone()));
            let mut out = String::new();
            root.write(&mut out, 0);
            let again = parse_document(&out).unwrap();
            proptest::prop_assert_eq!(again.text(), text.clone());
            proptest::prop_assert_eq!(again.attribute("a"), Some(text.as_str()));
            proptest::prop_assert!(!out.chars().any(|c| !matches!(c, '\n' | '\t') && shown::is_hidden(c)), "{:?}", out);
        }
    }

    #[test]
    fn round_trip_keeps_unknown_elements_and_escapes() {
        let xml = "<root a=\"1 &amp; &quot;2&quot;\"><x>1 &lt; 2</x><y><z/></y></root>";
        let root = parse_document(xml).unwrap();
        let mut out = String::new();
        root.write(&mut out, 0);
        assert_eq!(parse_document(&out).unwrap(), root);
        assert_eq!(root.child_text("x").as_deref(), Some("1 < 2"));
        assert_eq!(root.attribute("a"), Some("1 & \"2\""));
    }
}
