//! Freestyle job configuration as XML (compat §7.3–§7.4): what `create-job` reads and
//! `get-job` prints, and what a build needs of it: where it may run, its parameters, its
//! steps.
//!
//! - **Roots.** Steward runs freestyle jobs: `<project>` (also read as
//!   `<hudson.model.FreeStyleProject>`, and written as `<project>`). Other kinds of job
//!   (`<flow-definition>`, `<maven2-moduleset>`, `<matrix-project>`…) are refused: stored,
//!   they would never do what they say.
//! - **What is kept.** Elements Steward does not interpret are written back as read and in
//!   place: top-level ones (`<actions>`, `<scm>`, `<triggers>`, `<publishers>`…), other
//!   properties, unknown children of the parameter definitions and shell steps it knows,
//!   whole parameter definitions and steps of other classes, and root attributes
//!   (`plugin="…"`). `get-job` prints what `create-job` was given, re-indented, with the
//!   elements Steward interprets always written, as Jenkins writes them (a `<project/>` comes
//!   back with `<description/>`, `<canRoam>true</canRoam>`, `<disabled>false</disabled>`…).
//!   Steward does not add the elements it does not interpret. Text mixed with elements
//!   inside a kept element is re-indented ([`Element::normalize`]); Jenkins writes none.
//! - **Placement.** `<assignedNode>` is the label expression; `<canRoam>` is written from it
//!   (`true` without one), as Jenkins does. On reading, `<canRoam>` is checked to be a
//!   boolean and otherwise ignored: Jenkins never writes it against `<assignedNode>`, and
//!   the label expression is what says where a job runs.
//! - **Parameters.** See [`parameters`]: string, boolean and choice are understood, others
//!   are kept with their name and default visible. The parameters property is written after
//!   the other properties, and only when there are parameters; its own unknown children are
//!   not kept (Jenkins has none).
//! - **Source.** A `<scm class="hudson.plugins.git.GitSCM">` is read ([`git`]) and stays
//!   kept as written; builds check it out before the steps.
//! - **Permissions.** A `hudson.security.AuthorizationMatrixProperty` is read
//!   ([`authorization`]) and stays kept as written; the controller grants by it.
//! - **Steps.** [`Builder::Shell`] runs; any other step is kept, and
//!   [`JobConfig::ignored`] names it, with the SCM, triggers, publishers and build wrappers
//!   Steward keeps without acting on them: builds run without them.

pub mod authorization;
pub mod bindings;
pub mod breakpoint;
mod builders;
pub mod discarder;
pub mod git;
mod layout;
pub mod parameters;
pub mod publishers;
pub mod triggers;

use std::collections::HashSet;

pub use breakpoint::{Breakpoint, BreakpointWhen};
pub use builders::{Builder, SHELL, Shell, UNSTABLE_RETURN};
pub use discarder::BuildDiscarder;
pub use git::GitScm;

pub use parameters::{
    BooleanParameter, ChoiceParameter, OtherParameter, ParameterDefinition, ParameterError,
    StringParameter,
};

use crate::names::{self, MAX_NAME_LEN, NameError, NameKind};
use crate::xml::{self, Element, Node, XmlError};
use authorization::JobMatrix;
use layout::{Field, Layout};
use parameters::parse_bool;

/// The declaration Jenkins writes at the top of a job's `config.xml` (and so prints in
/// `get-job` and serves at `/job/NAME/config.xml`): single quotes, as its `XmlFile` writes
/// it, where a node's XML (`node_xml::XML_DECLARATION`) has double ones.
pub const JOB_XML_DECLARATION: &str = "<?xml version='1.1' encoding='UTF-8'?>";

/// The root element of a freestyle job, as Jenkins writes it.
pub const FREESTYLE_ROOT: &str = "project";
/// The same, under the class name XStream also reads.
pub const FREESTYLE_CLASS: &str = "hudson.model.FreeStyleProject";
/// The property holding parameter definitions.
pub const PARAMETERS_PROPERTY: &str = "hudson.model.ParametersDefinitionProperty";
/// Longest job name accepted: the same as a node name's.
pub const MAX_JOB_NAME_LEN: usize = MAX_NAME_LEN;

/// A freestyle job's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobConfig {
    /// Trimmed.
    pub description: String,
    /// The label expression (`<assignedNode>`), trimmed; `None` when absent or blank: the
    /// job runs on any node.
    pub assigned_node: Option<String>,
    pub disabled: bool,
    /// Builds of this job may run at the same time.
    pub concurrent_build: bool,
    /// The parameter definitions, in order. Names are unique, not blank, and have no `=` or
    /// control characters (`from_xml` refuses others).
    pub parameters: Vec<ParameterDefinition>,
    pub builders: Vec<Builder>,
    /// Root attributes, and where the fields above go among the top-level elements kept.
    layout: Layout<JobField>,
    /// `<properties>` children other than the parameters property, kept verbatim.
    other_properties: Vec<Element>,
    /// What the kept discarder property (or legacy `<logRotator>`) says: [`discarder`].
    discarder: Option<BuildDiscarder>,
    /// Whether `<properties>` holds the discarder property (read or not).
    has_discarder_property: bool,
    /// What the kept breakpoint property says: [`breakpoint`].
    breakpoint: Option<Breakpoint>,
    /// Whether `<properties>` holds the breakpoint property (read or not).
    has_breakpoint_property: bool,
    /// What a kept `<scm class="hudson.plugins.git.GitSCM">` says: [`git`].
    git: Option<GitScm>,
    /// What the kept matrix property says: [`authorization`].
    authorization: Option<JobMatrix>,
    /// Whether `<properties>` holds the matrix property (read or not).
    has_matrix_property: bool,
}

/// How a property Steward reads (the discarder, the breakpoint) that cannot be read is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strictness {
    /// A new configuration: refused, with the reason.
    New,
    /// A stored one: read as absent, so the job stays readable and repairable.
    Stored,
}

impl Strictness {
    fn apply<T>(self, read: Result<Option<T>, XmlError>) -> Result<Option<T>, XmlError> {
        match (self, read) {
            (Strictness::Stored, Err(_)) => Ok(None),
            (_, read) => read,
        }
    }
}

/// The top-level children Steward interprets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobField {
    Description,
    Properties,
    /// `<assignedNode>` and `<canRoam>`, written together.
    Placement,
    Disabled,
    ConcurrentBuild,
    Builders,
}

impl Field for JobField {
    fn names(self) -> &'static [&'static str] {
        match self {
            JobField::Description => &["description"],
            JobField::Properties => &["properties"],
            JobField::Placement => &["assignedNode", "canRoam"],
            JobField::Disabled => &["disabled"],
            JobField::ConcurrentBuild => &["concurrentBuild"],
            JobField::Builders => &["builders"],
        }
    }
}

const JOB_FIELDS: &[JobField] = &[
    JobField::Description,
    JobField::Properties,
    JobField::Placement,
    JobField::Disabled,
    JobField::ConcurrentBuild,
    JobField::Builders,
];

/// The order Jenkins writes a freestyle project's children in (`AbstractProject`,
/// `Project`), to place an interpreted element the document lacks.
const JENKINS_ORDER: &[&str] = &[
    "actions",
    "description",
    "displayName",
    "keepDependencies",
    "properties",
    "scm",
    "quietPeriod",
    "scmCheckoutRetryCount",
    "assignedNode",
    "canRoam",
    "disabled",
    "blockBuildWhenDownstreamBuilding",
    "blockBuildWhenUpstreamBuilding",
    "authToken",
    "jdk",
    "triggers",
    "concurrentBuild",
    "customWorkspace",
    "builders",
    "publishers",
    "buildWrappers",
];

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig::new()
    }
}

impl JobConfig {
    /// An empty freestyle job with Jenkins' defaults: enabled, runs anywhere, no steps.
    pub fn new() -> Self {
        JobConfig {
            description: String::new(),
            assigned_node: None,
            disabled: false,
            concurrent_build: false,
            parameters: Vec::new(),
            builders: Vec::new(),
            layout: Layout::new(JOB_FIELDS),
            other_properties: Vec::new(),
            discarder: None,
            has_discarder_property: false,
            breakpoint: None,
            has_breakpoint_property: false,
            git: None,
            authorization: None,
            has_matrix_property: false,
        }
    }

    /// Parses job XML; see the module documentation for what is kept and what is refused.
    pub fn from_xml(document: &str) -> Result<JobConfig, XmlError> {
        JobConfig::parse(document, Strictness::New)
    }

    /// Parses job XML that was stored earlier: as [`JobConfig::from_xml`], except that a
    /// build discarder this version cannot read (stored before its limits were checked)
    /// reads as none, rather than making the job unreadable.
    pub fn from_stored_xml(document: &str) -> Result<JobConfig, XmlError> {
        JobConfig::parse(document, Strictness::Stored)
    }

    fn parse(document: &str, strictness: Strictness) -> Result<JobConfig, XmlError> {
        let mut root = xml::parse_document(document)?;
        // Kept elements must read back equal to themselves once written.
        root.normalize();
        if root.name != FREESTYLE_ROOT && root.name != FREESTYLE_CLASS {
            return Err(XmlError::NotFreestyleJob(root.name));
        }
        let mut job = JobConfig::new();
        job.layout = Layout::read(&root, JOB_FIELDS, JENKINS_ORDER, |field, child| {
            let text = || child.text().trim().to_owned();
            match field {
                JobField::Description => job.description = text(),
                JobField::Placement if child.name == "canRoam" => {
                    parse_bool("canRoam", &child.text())?;
                }
                JobField::Placement => job.assigned_node = Some(text()).filter(|t| !t.is_empty()),
                JobField::Disabled => job.disabled = parse_bool("disabled", &child.text())?,
                JobField::ConcurrentBuild => {
                    job.concurrent_build = parse_bool("concurrentBuild", &child.text())?
                }
                JobField::Properties => job.read_properties(child, strictness)?,
                JobField::Builders => {
                    let strict = strictness == Strictness::New;
                    job.builders = child
                        .child_elements()
                        .map(|b| builders::read_builder(b, strict))
                        .collect::<Result<_, _>>()?
                }
            }
            Ok(())
        })?;
        // Jenkins reads the pre-1.503 element only when the property is absent.
        if !job.has_discarder_property
            && let Some(legacy) = job
                .layout
                .kept()
                .find(|e| e.name == discarder::LEGACY_LOG_ROTATOR)
        {
            job.discarder = strictness.apply(discarder::read_log_rotator(legacy))?;
        }
        let git = {
            let mut scms = job.layout.kept().filter(|e| e.name == "scm");
            let scm = scms.next();
            if scms.next().is_some() {
                return Err(XmlError::Duplicate {
                    element: "scm".into(),
                    parent: FREESTYLE_ROOT.into(),
                });
            }
            match scm.filter(|e| e.attribute("class") == Some(git::GIT_SCM)) {
                Some(scm) => strictness.apply(GitScm::read(scm).map(Some))?,
                None => None,
            }
        };
        job.git = git;
        if strictness == Strictness::New {
            // Checked now, so a job never holds a schedule or threshold its triggers cannot
            // read; the seed does not change what parses.
            job.triggers("")?;
            job.build_trigger()?;
            job.bindings()?;
            job.publishers()?;
            job.build_timeout()?;
        }
        Ok(job)
    }

    fn read_properties(
        &mut self,
        properties: &Element,
        strictness: Strictness,
    ) -> Result<(), XmlError> {
        let mut seen = false;
        for property in properties.child_elements() {
            if property.name == discarder::DISCARDER_PROPERTY {
                let discarder = if std::mem::replace(&mut self.has_discarder_property, true) {
                    Err(XmlError::Duplicate {
                        element: discarder::DISCARDER_PROPERTY.into(),
                        parent: "properties".into(),
                    })
                } else {
                    discarder::read_property(property)
                };
                self.discarder = strictness.apply(discarder)?;
            }
            if property.name == breakpoint::BREAKPOINT_PROPERTY {
                let read = if std::mem::replace(&mut self.has_breakpoint_property, true) {
                    Err(XmlError::Duplicate {
                        element: breakpoint::BREAKPOINT_PROPERTY.into(),
                        parent: "properties".into(),
                    })
                } else {
                    breakpoint::read_property(property).map(Some)
                };
                self.breakpoint = strictness.apply(read)?;
            }
            if property.name == authorization::MATRIX_PROPERTY {
                let read = if std::mem::replace(&mut self.has_matrix_property, true) {
                    Err(XmlError::Duplicate {
                        element: authorization::MATRIX_PROPERTY.into(),
                        parent: "properties".into(),
                    })
                } else {
                    authorization::read_property(property).map(Some)
                };
                self.authorization = strictness.apply(read)?;
            }
            if property.name != PARAMETERS_PROPERTY {
                self.other_properties.push(property.clone());
                continue;
            }
            if std::mem::replace(&mut seen, true) {
                return Err(XmlError::Duplicate {
                    element: PARAMETERS_PROPERTY.into(),
                    parent: "properties".into(),
                });
            }
            let mut definitions = property
                .child_elements()
                .filter(|e| e.name == "parameterDefinitions");
            if let Some(list) = definitions.next() {
                if definitions.next().is_some() {
                    return Err(XmlError::Duplicate {
                        element: "parameterDefinitions".into(),
                        parent: PARAMETERS_PROPERTY.into(),
                    });
                }
                self.parameters = list
                    .child_elements()
                    .map(parameters::read_parameter)
                    .collect::<Result<_, _>>()?;
            }
        }
        let mut names = HashSet::new();
        for parameter in &self.parameters {
            if !names.insert(parameter.name()) {
                return Err(XmlError::bad_value(
                    "name",
                    parameter.name(),
                    "two parameters have this name",
                ));
            }
        }
        Ok(())
    }

    /// Writes the job XML without the declaration ([`JOB_XML_DECLARATION`]).
    pub fn to_xml(&self) -> String {
        let text = |name: &str, value: &str| Element::with_text(name, value);
        let root = self.layout.write(FREESTYLE_ROOT, |field, out| match field {
            JobField::Description => out.push(text("description", &self.description)),
            JobField::Placement => {
                if let Some(label) = &self.assigned_node {
                    out.push(text("assignedNode", label));
                }
                let can_roam = self.assigned_node.is_none();
                out.push(text("canRoam", &can_roam.to_string()));
            }
            JobField::Disabled => out.push(text("disabled", &self.disabled.to_string())),
            JobField::ConcurrentBuild => {
                out.push(text("concurrentBuild", &self.concurrent_build.to_string()))
            }
            JobField::Properties => out.push(self.write_properties()),
            JobField::Builders => out.push(list(
                "builders",
                self.builders.iter().map(builders::write_builder),
            )),
        });
        let mut out = String::new();
        root.write(&mut out, 0);
        out
    }

    fn write_properties(&self) -> Element {
        let mut properties = list("properties", self.other_properties.iter().cloned());
        if !self.parameters.is_empty() {
            let definitions = list(
                "parameterDefinitions",
                self.parameters.iter().map(parameters::write_parameter),
            );
            let property = list(PARAMETERS_PROPERTY, [definitions]);
            properties.children.push(Node::Element(property));
        }
        properties
    }

    /// Top-level elements Steward does not interpret, in document order.
    pub fn other_elements(&self) -> impl Iterator<Item = &Element> {
        self.layout.kept()
    }

    /// Properties other than the parameters property, in document order.
    pub fn other_properties(&self) -> &[Element] {
        &self.other_properties
    }

    /// Which old builds to discard ("Discard old builds"), if the job says.
    pub fn build_discarder(&self) -> Option<BuildDiscarder> {
        self.discarder.filter(BuildDiscarder::limits_anything)
    }

    /// The job's Git checkout (`<scm class="hudson.plugins.git.GitSCM">`), if it has one.
    pub fn git(&self) -> Option<&GitScm> {
        self.git.as_ref()
    }

    /// The job's own grants (`hudson.security.AuthorizationMatrixProperty`), if it has them.
    pub fn authorization(&self) -> Option<&JobMatrix> {
        self.authorization.as_ref()
    }

    /// The job's breakpoint settings (`steward.BreakpointProperty`), if it has them.
    pub fn breakpoint(&self) -> Option<&Breakpoint> {
        self.breakpoint.as_ref()
    }

    /// The root element's attributes (e.g. `plugin="…"`), as read.
    pub fn root_attributes(&self) -> &[(String, String)] {
        &self.layout.attributes
    }

    /// The elements under `<scm>`, `<triggers>`, `<builders>`, `<publishers>` and
    /// `<buildWrappers>` that Steward keeps but does not act on: those of `<scm>`,
    /// `<triggers>`, `<publishers>` and `<buildWrappers>` in document order, then the steps
    /// it does not run. Builds run without them, and users are told
    /// ([`Ignored::warning`]). A `hudson.scm.NullSCM` (no source control) is not one.
    pub fn ignored(&self) -> Vec<Ignored> {
        let mut ignored = Vec::new();
        for element in self.layout.kept() {
            match element.name.as_str() {
                "scm" => {
                    let class = element.attribute("class").unwrap_or("scm");
                    if let Some(git) = self.git.as_ref().filter(|_| class == git::GIT_SCM) {
                        for extension in git.ignored() {
                            ignored.push(Ignored::of("scm", extension, element));
                        }
                    } else if class != NULL_SCM {
                        ignored.push(Ignored::of("scm", class, element));
                    }
                }
                section @ ("triggers" | "publishers" | "buildWrappers") => {
                    for child in element.child_elements() {
                        if child.name == bindings::SECRET_BUILD_WRAPPER {
                            // Carried out; bindings of other classes are named.
                            let others = bindings::read_wrapper(child)
                                .map(|(_, others)| others)
                                .unwrap_or_default();
                            for other in others {
                                ignored.push(Ignored::of("buildWrappers", &other, child));
                            }
                            continue;
                        }
                        let acted_on = match section {
                            "buildWrappers" => {
                                plain_cleanup(child)
                                    || child.name == publishers::TIMESTAMPER_WRAPPER
                                    || (child.name == publishers::BUILD_TIMEOUT_WRAPPER
                                        && matches!(
                                            publishers::read_build_timeout(child),
                                            Ok(Some(_))
                                        ))
                            }
                            "triggers" => triggers::Triggers::understands(&child.name),
                            _ => {
                                child.name == triggers::BUILD_TRIGGER
                                    || child.name == publishers::ARTIFACT_ARCHIVER
                                    || child.name == publishers::JUNIT_ARCHIVER
                            }
                        };
                        if acted_on {
                            continue;
                        }
                        ignored.push(Ignored::of(section_name(section), &child.name, child));
                    }
                }
                _ => {}
            }
        }
        for builder in &self.builders {
            if let Builder::Other(step) = builder {
                ignored.push(Ignored::of("builders", &step.name, step));
            }
        }
        ignored
    }

    /// The job's triggers (`<triggers>`), `H` in their specs hashed from `name`.
    pub fn triggers(&self, name: &str) -> Result<triggers::Triggers, XmlError> {
        match self.layout.kept().find(|e| e.name == "triggers") {
            Some(element) => triggers::Triggers::read(element, name),
            None => Ok(triggers::Triggers::default()),
        }
    }

    /// The jobs its `hudson.tasks.BuildTrigger` publisher starts after a build, if any.
    pub fn build_trigger(&self) -> Result<Option<triggers::Linked>, XmlError> {
        self.layout
            .kept()
            .filter(|e| e.name == "publishers")
            .flat_map(|e| e.child_elements())
            .find(|e| e.name == triggers::BUILD_TRIGGER)
            .map(triggers::read_build_trigger)
            .transpose()
    }

    /// The publishers Steward carries out after the steps, in the job's order.
    pub fn publishers(&self) -> Result<Vec<publishers::Publisher>, XmlError> {
        let mut all = Vec::new();
        for element in self.wrapped("publishers") {
            if let Some(publisher) = publishers::read_publisher(element)? {
                all.push(publisher);
            }
        }
        Ok(all)
    }

    /// The build timeout (`BuildTimeoutWrapper`) Steward enforces, if any.
    pub fn build_timeout(&self) -> Result<Option<publishers::BuildTimeout>, XmlError> {
        for element in self.wrapped("buildWrappers") {
            if element.name == publishers::BUILD_TIMEOUT_WRAPPER
                && let Some(timeout) = publishers::read_build_timeout(element)?
            {
                return Ok(Some(timeout));
            }
        }
        Ok(None)
    }

    /// Whether each console line gets a timestamp (`TimestamperBuildWrapper`).
    pub fn timestamps(&self) -> bool {
        self.wrapped("buildWrappers")
            .any(|e| e.name == publishers::TIMESTAMPER_WRAPPER)
    }

    /// The children of the kept top-level `section` elements.
    fn wrapped<'a>(&'a self, section: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.layout
            .kept()
            .filter(move |e| e.name == section)
            .flat_map(|e| e.child_elements())
    }

    /// The credentials its `SecretBuildWrapper` binds into builds, in order.
    pub fn bindings(&self) -> Result<Vec<bindings::Binding>, XmlError> {
        let mut all = Vec::new();
        for wrapper in self
            .layout
            .kept()
            .filter(|e| e.name == "buildWrappers")
            .flat_map(|e| e.child_elements())
            .filter(|e| e.name == bindings::SECRET_BUILD_WRAPPER)
        {
            all.extend(bindings::read_wrapper(wrapper)?.0);
        }
        Ok(all)
    }

    /// Whether the workspace is deleted before each build (`PreBuildCleanup` of the
    /// Workspace Cleanup plugin, without patterns: the whole workspace).
    pub fn pre_build_cleanup(&self) -> bool {
        self.layout
            .kept()
            .filter(|e| e.name == "buildWrappers")
            .flat_map(|e| e.child_elements())
            .any(plain_cleanup)
    }

    /// `NAME=VALUE` for each of a build's parameters, joined by spaces, a secret one's
    /// value shown as `****` ([`ParameterDefinition::is_secret`]).
    pub fn shown_parameters(&self, params: &[(String, String)]) -> String {
        params
            .iter()
            .map(|(name, value)| {
                let secret = self
                    .parameters
                    .iter()
                    .any(|p| p.name() == name && p.is_secret());
                if secret {
                    format!("{name}=****")
                } else {
                    format!("{name}={value}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Every parameter's name and the value a build gets when none is given, in order.
    pub fn parameter_defaults(&self) -> Vec<(String, String)> {
        self.parameters
            .iter()
            .map(|p| (p.name().to_owned(), p.default_value()))
            .collect()
    }

    /// The parameters of a build given `given` (`build -p NAME=VALUE`, in order; a name
    /// given twice takes the last value, as Jenkins does): every parameter, in the order of
    /// the definitions, with the value given or its default. A name that is not a parameter,
    /// a value not among a choice's choices and a boolean that is neither `true` nor `false`
    /// are refused.
    pub fn resolve_parameters(
        &self,
        given: &[(String, String)],
    ) -> Result<Vec<(String, String)>, ParameterError> {
        parameters::resolve(&self.parameters, given)
    }

    /// Enables or disables the job; says whether that changed anything.
    pub fn set_disabled(&mut self, disabled: bool) -> bool {
        std::mem::replace(&mut self.disabled, disabled) != disabled
    }
}

/// The Workspace Cleanup plugin's build wrapper: delete the workspace before the build.
pub const PRE_BUILD_CLEANUP: &str = "hudson.plugins.ws__cleanup.PreBuildCleanup";

/// A `PreBuildCleanup` Steward does itself: the whole workspace, with no include or exclude
/// patterns, no external command and no parameter deciding it (those stay ignored).
fn plain_cleanup(wrapper: &Element) -> bool {
    let empty = |name: &str| {
        wrapper
            .child(name)
            .is_none_or(|e| e.text().trim().is_empty() && e.child_elements().next().is_none())
    };
    wrapper.name == PRE_BUILD_CLEANUP
        && empty("patterns")
        && empty("externalDelete")
        && empty("cleanupParameter")
}

/// The `<scm>` class that means no source control.
pub const NULL_SCM: &str = "hudson.scm.NullSCM";

fn section_name(section: &str) -> &'static str {
    match section {
        "triggers" => "triggers",
        "publishers" => "publishers",
        _ => "buildWrappers",
    }
}

/// An element a job holds that Steward keeps and does not act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// `scm`, `triggers`, `builders`, `publishers` or `buildWrappers`.
    pub section: &'static str,
    /// The element's name (for `<scm>`, its `class`).
    pub element: String,
    /// The plugin its `plugin="NAME@VERSION"` attribute names; `None` for Jenkins core's.
    pub plugin: Option<String>,
}

impl Ignored {
    fn of(section: &'static str, element: &str, source: &Element) -> Ignored {
        let plugin = source
            .attribute("plugin")
            .map(|p| p.split('@').next().unwrap_or(p).trim().to_owned())
            .filter(|p| !p.is_empty());
        Ignored {
            section,
            element: element.to_owned(),
            plugin,
        }
    }

    /// `WARNING: Steward ignores <ELEMENT> (plugin P); builds run without it`.
    pub fn warning(&self) -> String {
        let from = match &self.plugin {
            Some(plugin) => format!("plugin {}", crate::shown::Shown(plugin)),
            None => "Jenkins core".to_owned(),
        };
        format!(
            "WARNING: Steward ignores <{}> ({from}); builds run without it",
            crate::shown::Shown(&self.element)
        )
    }
}

/// An element `name` holding `children`.
fn list(name: &str, children: impl IntoIterator<Item = Element>) -> Element {
    let mut element = Element::new(name);
    element.children = children.into_iter().map(Node::Element).collect();
    element
}

/// Why a job name is refused.
pub type JobNameError = NameError;

/// Checks a job name, in the form it is stored in ([`names::canonical`]): the same rules
/// as a node name's ([`names`]).
pub fn validate_job_name(name: &str) -> Result<(), JobNameError> {
    names::validate(NameKind::Job, name)
}

#[cfg(test)]
mod tests;
