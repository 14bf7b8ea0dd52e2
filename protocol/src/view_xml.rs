//! View XML, as Jenkins' `get-view`/`create-view`/`update-view` and `/view/NAME/config.xml`
//! speak it: `hudson.model.ListView` (the jobs it names in `<jobNames>`, and those whose
//! name matches `<includeRegex>`) and `hudson.model.AllView` (every job; the built-in view
//! `all` is one). Elements Steward does not act on (columns, job filters, properties) are
//! kept and written back, in Jenkins' order.

use crate::xml::{self, Element, Node, XmlError};

/// Jenkins' list view class.
pub const LIST_VIEW: &str = "hudson.model.ListView";
/// Jenkins' view of every job.
pub const ALL_VIEW: &str = "hudson.model.AllView";
/// The built-in view: it always exists and cannot be deleted.
pub const BUILT_IN: &str = "all";
/// The XML declaration `get-view` prints, as Jenkins' `View.writeXml` writes it.
pub const XML_DECLARATION: &str = "<?xml version=\"1.1\" encoding=\"UTF-8\"?>";
/// Longest `includeRegex` accepted: a pattern is a line, not a document.
pub const MAX_REGEX_LEN: usize = 4096;

/// The kinds of view Steward shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    List,
    All,
}

impl ViewKind {
    pub fn class(self) -> &'static str {
        match self {
            ViewKind::List => LIST_VIEW,
            ViewKind::All => ALL_VIEW,
        }
    }
}

/// A view's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewConfig {
    pub kind: ViewKind,
    /// Empty when the XML has none (`create-view NAME` gives it).
    pub name: String,
    pub description: Option<String>,
    /// The jobs a list view names, sorted and without duplicates, case aside, as Jenkins'
    /// `CaseInsensitiveComparator` keeps them.
    pub job_names: Vec<String>,
    /// A list view's pattern: the jobs whose whole name it matches are in the view too.
    pub include_regex: Option<String>,
    /// Elements Steward keeps without acting on them, by name.
    kept: Vec<Element>,
}

/// Elements written after `description`, in Jenkins' order, with what a view without them
/// gets; the second group only for list views.
const COMMON: &[&str] = &["filterExecutors", "filterQueue", "properties"];
const LIST_ONLY: &[&str] = &["jobFilters", "columns", "recurse"];

/// The columns Jenkins gives a new list view.
const DEFAULT_COLUMNS: &[&str] = &[
    "hudson.views.StatusColumn",
    "hudson.views.WeatherColumn",
    "hudson.views.JobColumn",
    "hudson.views.LastSuccessColumn",
    "hudson.views.LastFailureColumn",
    "hudson.views.LastDurationColumn",
    "hudson.views.BuildButtonColumn",
];

fn default_element(name: &str) -> Element {
    match name {
        "filterExecutors" | "filterQueue" | "recurse" => Element::with_text(name, "false"),
        "properties" => {
            let mut e = Element::new(name);
            e.attributes
                .push(("class".into(), "hudson.model.View$PropertyList".into()));
            e
        }
        "columns" => {
            let mut e = Element::new(name);
            e.children.extend(
                DEFAULT_COLUMNS
                    .iter()
                    .map(|c| Node::Element(Element::new(*c))),
            );
            e
        }
        _ => Element::new(name),
    }
}

impl ViewConfig {
    /// A view of `kind` named `name`, with Jenkins' defaults.
    pub fn new(kind: ViewKind, name: impl Into<String>) -> ViewConfig {
        ViewConfig {
            kind,
            name: name.into(),
            description: None,
            job_names: Vec::new(),
            include_regex: None,
            kept: Vec::new(),
        }
    }

    /// Reads view XML: `<hudson.model.ListView>` or `<hudson.model.AllView>`.
    pub fn from_xml(document: &str) -> Result<ViewConfig, XmlError> {
        let root = xml::parse_document(document)?;
        let kind = match root.name.as_str() {
            LIST_VIEW => ViewKind::List,
            ALL_VIEW => ViewKind::All,
            other => {
                return Err(XmlError::UnexpectedRoot {
                    expected: format!("{LIST_VIEW}> or <{ALL_VIEW}"),
                    found: other.to_owned(),
                });
            }
        };
        let mut view = ViewConfig::new(kind, String::new());
        let mut seen: Vec<&str> = Vec::new();
        for child in root.child_elements() {
            if seen.contains(&child.name.as_str()) {
                return Err(XmlError::Duplicate {
                    element: child.name.clone(),
                    parent: root.name.clone(),
                });
            }
            seen.push(&child.name);
            match child.name.as_str() {
                "name" => view.name = child.text().trim().to_owned(),
                "description" => view.description = Some(child.text()),
                "jobNames" if kind == ViewKind::List => {
                    let names = child
                        .child_elements()
                        .filter(|e| e.name == "string")
                        .map(|e| e.text().trim().to_owned())
                        .filter(|n| !n.is_empty());
                    view.set_job_names(names);
                }
                "includeRegex" if kind == ViewKind::List => {
                    let regex = child.text();
                    if regex.chars().count() > MAX_REGEX_LEN {
                        return Err(XmlError::bad_value(
                            "includeRegex",
                            &regex,
                            format!("longer than {MAX_REGEX_LEN} characters"),
                        ));
                    }
                    view.include_regex = Some(regex).filter(|r| !r.is_empty());
                }
                _ => view.kept.push(child.clone()),
            }
        }
        Ok(view)
    }

    /// Sets the jobs a list view names: sorted and deduplicated, case aside.
    pub fn set_job_names(&mut self, names: impl IntoIterator<Item = String>) {
        let mut names: Vec<String> = names.into_iter().collect();
        names.sort_by_key(|n| n.to_lowercase());
        names.dedup_by(|a, b| a.to_lowercase() == b.to_lowercase());
        self.job_names = names;
    }

    /// Writes the view XML without the declaration, as Jenkins writes it.
    pub fn to_xml(&self) -> String {
        let mut root = Element::new(self.kind.class());
        let mut push = |e: Element| root.children.push(Node::Element(e));
        push(Element::with_text("name", &self.name));
        if let Some(description) = &self.description {
            push(Element::with_text("description", description));
        }
        let kept = |name: &str| {
            self.kept
                .iter()
                .find(|e| e.name == name)
                .cloned()
                .unwrap_or_else(|| default_element(name))
        };
        for name in COMMON {
            push(kept(name));
        }
        if self.kind == ViewKind::List {
            let mut job_names = Element::new("jobNames");
            let mut comparator = Element::new("comparator");
            comparator.attributes.push((
                "class".into(),
                "hudson.util.CaseInsensitiveComparator".into(),
            ));
            job_names.children.push(Node::Element(comparator));
            for name in &self.job_names {
                job_names
                    .children
                    .push(Node::Element(Element::with_text("string", name)));
            }
            push(job_names);
            push(kept("jobFilters"));
            push(kept("columns"));
            if let Some(regex) = &self.include_regex {
                push(Element::with_text("includeRegex", regex));
            }
            push(kept("recurse"));
        }
        let written: Vec<&str> = COMMON
            .iter()
            .chain(if self.kind == ViewKind::List {
                LIST_ONLY
            } else {
                &[]
            })
            .copied()
            .collect();
        for other in &self.kept {
            if !written.contains(&other.name.as_str()) {
                push(other.clone());
            }
        }
        let mut out = String::new();
        root.write(&mut out, 0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTHON_JENKINS_EMPTY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<hudson.model.ListView>
  <name>EMPTY</name>
  <filterExecutors>false</filterExecutors>
  <filterQueue>false</filterQueue>
  <properties class="hudson.model.View$PropertyList"/>
  <jobNames>
    <comparator class="hudson.util.CaseInsensitiveComparator"/>
  </jobNames>
  <jobFilters/>
  <columns>
    <hudson.views.StatusColumn/>
    <hudson.views.WeatherColumn/>
    <hudson.views.JobColumn/>
    <hudson.views.LastSuccessColumn/>
    <hudson.views.LastFailureColumn/>
    <hudson.views.LastDurationColumn/>
    <hudson.views.BuildButtonColumn/>
  </columns>
</hudson.model.ListView>"#;

    #[test]
    fn a_list_view_reads_and_writes_as_jenkins_keeps_it() {
        let view = ViewConfig::from_xml(PYTHON_JENKINS_EMPTY).unwrap();
        assert_eq!(view.kind, ViewKind::List);
        assert_eq!(view.name, "EMPTY");
        assert!(view.job_names.is_empty());
        let written = view.to_xml();
        // What was written reads back as the same view.
        assert_eq!(ViewConfig::from_xml(&written).unwrap().to_xml(), written);
        assert!(written.contains("<recurse>false</recurse>"), "{written}");

        let view = ViewConfig::from_xml(
            "<hudson.model.ListView><name>web</name><description>Front end</description>\
             <jobNames><string>zeta</string><string>Alpha</string><string>alpha</string>\
             <string>  </string></jobNames><includeRegex>web-.*</includeRegex>\
             <custom a=\"1\">kept</custom></hudson.model.ListView>",
        )
        .unwrap();
        assert_eq!(view.job_names, ["Alpha", "zeta"]);
        assert_eq!(view.include_regex.as_deref(), Some("web-.*"));
        assert_eq!(view.description.as_deref(), Some("Front end"));
        let written = view.to_xml();
        assert!(
            written.starts_with(
                "<hudson.model.ListView>\n  <name>web</name>\n  <description>Front end</description>\n  <filterExecutors>false</filterExecutors>\n"
            ),
            "{written}"
        );
        assert!(
            written.contains("<custom a=\"1\">kept</custom>"),
            "{written}"
        );
        assert!(
            written.find("<columns>").unwrap() < written.find("<includeRegex>").unwrap(),
            "{written}"
        );
        let read = ViewConfig::from_xml(&written).unwrap();
        assert_eq!(
            (read.job_names.clone(), read.to_xml()),
            (view.job_names.clone(), written)
        );
    }

    #[test]
    fn the_all_view_and_bad_documents() {
        let all = ViewConfig::from_xml(
            "<hudson.model.AllView><name>all</name><filterExecutors>false</filterExecutors>\
             <filterQueue>false</filterQueue><properties class=\"hudson.model.View$PropertyList\"/>\
             </hudson.model.AllView>",
        )
        .unwrap();
        assert_eq!(all.kind, ViewKind::All);
        assert_eq!(all.to_xml(), ViewConfig::new(ViewKind::All, "all").to_xml());
        assert!(!all.to_xml().contains("jobNames"));
        for (bad, why) in [
            (
                "<hudson.plugins.view.dashboard.Dashboard/>",
                "expected root element <hudson.model.ListView> or <hudson.model.AllView>",
            ),
            (
                "<hudson.model.ListView><name>a</name><name>b</name></hudson.model.ListView>",
                "<name> appears more than once",
            ),
            ("<hudson.model.ListView>", "malformed XML"),
        ] {
            let e = ViewConfig::from_xml(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!(
            "<hudson.model.ListView><includeRegex>{}</includeRegex></hudson.model.ListView>",
            "a".repeat(MAX_REGEX_LEN + 1)
        );
        assert!(ViewConfig::from_xml(&long).is_err());
    }
}
