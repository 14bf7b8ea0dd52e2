//! Build parameters: their definitions in job XML (`<parameterDefinitions>`), and the values a
//! build gets from them and from `build -p NAME=VALUE`.
//!
//! Steward knows Jenkins' string, boolean and choice parameters. Any other class (a password,
//! a multi-line text, a plugin's) is kept verbatim; its `<name>` and `<defaultValue>` are
//! still read, so a build gets every parameter in its environment, and `-p` sets such a
//! parameter to the text given.

use super::layout::{Field, Layout};
use crate::xml::{Element, Node, XmlError};

/// Element name of a string parameter.
pub const STRING_PARAMETER: &str = "hudson.model.StringParameterDefinition";
/// Element name of a boolean parameter.
pub const BOOLEAN_PARAMETER: &str = "hudson.model.BooleanParameterDefinition";
/// Element name of a choice parameter.
pub const CHOICE_PARAMETER: &str = "hudson.model.ChoiceParameterDefinition";

/// The `class` of `<choices>` that Jenkins writes, and of the string array inside it.
const CHOICES_CLASS: &str = "java.util.Arrays$ArrayList";
const STRING_ARRAY_CLASS: &str = "string-array";

/// Most parameter names, or choices, listed in one error message.
const MAX_LISTED: usize = 20;
/// Longest value quoted back in a [`ParameterError`].
const MAX_QUOTED: usize = 80;

/// One parameter definition, in the order the job lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterDefinition {
    String(StringParameter),
    Boolean(BooleanParameter),
    Choice(ChoiceParameter),
    /// A class Steward does not know, e.g. `hudson.model.PasswordParameterDefinition`.
    Other(OtherParameter),
}

/// `hudson.model.StringParameterDefinition`: one line of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringParameter {
    pub name: String,
    pub description: String,
    /// The default as written (not trimmed unless `trim` is set).
    pub default_value: String,
    /// Trim the value a build gets, default or given.
    pub trim: bool,
    layout: Layout<ParamField>,
}

/// `hudson.model.BooleanParameterDefinition`: `true` or `false`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BooleanParameter {
    pub name: String,
    pub description: String,
    pub default_value: bool,
    layout: Layout<ParamField>,
}

/// `hudson.model.ChoiceParameterDefinition`: one of a list; the first is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceParameter {
    pub name: String,
    pub description: String,
    /// Never empty.
    pub choices: Vec<String>,
    layout: Layout<ParamField>,
}

/// A parameter definition of a class Steward does not know, kept verbatim. What Steward
/// reads of it cannot be changed, so the element always says the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherParameter {
    element: Element,
    name: String,
    description: String,
    default_value: Option<String>,
}

impl StringParameter {
    pub fn new(name: impl Into<String>, default_value: impl Into<String>) -> Self {
        StringParameter {
            name: name.into(),
            description: String::new(),
            default_value: default_value.into(),
            trim: false,
            layout: Layout::new(STRING_FIELDS),
        }
    }
}

impl BooleanParameter {
    pub fn new(name: impl Into<String>, default_value: bool) -> Self {
        BooleanParameter {
            name: name.into(),
            description: String::new(),
            default_value,
            layout: Layout::new(BOOLEAN_FIELDS),
        }
    }
}

impl ChoiceParameter {
    /// `choices` must not be empty: its first is the default.
    pub fn new(name: impl Into<String>, choices: Vec<String>) -> Self {
        ChoiceParameter {
            name: name.into(),
            description: String::new(),
            choices,
            layout: Layout::new(CHOICE_FIELDS),
        }
    }
}

impl OtherParameter {
    /// The element name: the parameter's Java class.
    pub fn class(&self) -> &str {
        &self.element.name
    }

    /// The element as read.
    pub fn element(&self) -> &Element {
        &self.element
    }

    /// The text of `<defaultValue>`, when there is one. Jenkins writes some defaults
    /// encrypted (a password's is `{AQAAABAAAAAQ…}`), which Steward cannot read.
    pub fn default_value(&self) -> Option<&str> {
        self.default_value.as_deref()
    }
}

impl ParameterDefinition {
    /// Whether its values are secrets (a `PasswordParameterDefinition`, or another class
    /// of password): shown as `****` wherever a build's parameters are listed.
    pub fn is_secret(&self) -> bool {
        self.class().contains("Password")
    }

    pub fn name(&self) -> &str {
        match self {
            ParameterDefinition::String(p) => &p.name,
            ParameterDefinition::Boolean(p) => &p.name,
            ParameterDefinition::Choice(p) => &p.name,
            ParameterDefinition::Other(p) => &p.name,
        }
    }

    pub fn description(&self) -> &str {
        match self {
            ParameterDefinition::String(p) => &p.description,
            ParameterDefinition::Boolean(p) => &p.description,
            ParameterDefinition::Choice(p) => &p.description,
            ParameterDefinition::Other(p) => &p.description,
        }
    }

    /// The element name: the parameter's Java class.
    pub fn class(&self) -> &str {
        match self {
            ParameterDefinition::String(_) => STRING_PARAMETER,
            ParameterDefinition::Boolean(_) => BOOLEAN_PARAMETER,
            ParameterDefinition::Choice(_) => CHOICE_PARAMETER,
            ParameterDefinition::Other(p) => p.class(),
        }
    }

    /// The value a build gets when none is given: a string's default (trimmed if `trim`),
    /// `true`/`false`, the first choice, or another class's `<defaultValue>` text (empty
    /// without one).
    pub fn default_value(&self) -> String {
        match self {
            ParameterDefinition::String(p) if p.trim => p.default_value.trim().to_owned(),
            ParameterDefinition::String(p) => p.default_value.clone(),
            ParameterDefinition::Boolean(p) => p.default_value.to_string(),
            ParameterDefinition::Choice(p) => p.choices.first().cloned().unwrap_or_default(),
            ParameterDefinition::Other(p) => p.default_value.clone().unwrap_or_default(),
        }
    }

    /// The value a build gets when `given` is given, as Jenkins' `build -p` takes it: a
    /// string trimmed if `trim`, a boolean `true` for `true` in any case and `false` for
    /// anything else, a choice only
    /// if it is one of the choices, another class's text as it is.
    pub fn resolve(&self, given: &str) -> Result<String, ParameterError> {
        match self {
            ParameterDefinition::String(p) if p.trim => Ok(given.trim().to_owned()),
            // Java's `Boolean.parseBoolean`, as Jenkins takes it: `true` in any case is true,
            // anything else (`yes`, `1`) false.
            ParameterDefinition::Boolean(_) => Ok(given.eq_ignore_ascii_case("true").to_string()),
            ParameterDefinition::Choice(p) if !p.choices.iter().any(|c| c == given) => {
                Err(ParameterError::NotAChoice {
                    parameter: p.name.clone(),
                    value: quoted(given),
                    choices: p.choices.clone(),
                })
            }
            _ => Ok(given.to_owned()),
        }
    }
}

/// The values of a build's parameters: see `JobConfig::resolve_parameters`.
pub(crate) fn resolve(
    definitions: &[ParameterDefinition],
    given: &[(String, String)],
) -> Result<Vec<(String, String)>, ParameterError> {
    for (name, _) in given {
        if !definitions.iter().any(|p| p.name() == name) {
            return Err(ParameterError::Unknown {
                name: quoted(name),
                known: definitions.iter().map(|p| p.name().to_owned()).collect(),
            });
        }
    }
    definitions
        .iter()
        .map(|p| {
            // The last value given wins, as in Jenkins' `build`, whose -p fills a map.
            let value = match given.iter().rev().find(|(name, _)| name == p.name()) {
                Some((_, value)) => p.resolve(value)?,
                None => p.default_value(),
            };
            Ok((p.name().to_owned(), value))
        })
        .collect()
}

/// Why the values given for a build do not fit its job's parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterError {
    #[error("'{name}' is not a valid parameter.{}", did_you_mean(.name, .known))]
    Unknown {
        name: String,
        /// The job's parameter names.
        known: Vec<String>,
    },
    #[error("‘{value}’ is not a choice of parameter ‘{parameter}’; the choices are {}", list(.choices))]
    NotAChoice {
        parameter: String,
        value: String,
        choices: Vec<String>,
    },
}

/// ` Did you mean NAME?` with the known name nearest to `name`, as Jenkins' `build` says it.
fn did_you_mean(name: &str, known: &[String]) -> String {
    match crate::names::nearest(name, known.iter().map(String::as_str)) {
        Some(nearest) => format!(" Did you mean {}?", quoted(nearest)),
        None => String::new(),
    }
}

/// `‘a’, ‘b’, ‘c’`, at most [`MAX_LISTED`] of them, each at most [`MAX_QUOTED`] characters.
fn list(items: &[String]) -> String {
    let mut out: Vec<String> = items
        .iter()
        .take(MAX_LISTED)
        .map(|item| format!("‘{}’", quoted(item)))
        .collect();
    if items.len() > MAX_LISTED {
        out.push(format!("and {} more", items.len() - MAX_LISTED));
    }
    out.join(", ")
}

fn quoted(value: &str) -> String {
    value.chars().take(MAX_QUOTED).collect()
}

/// The children of a known parameter definition that Steward interprets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParamField {
    Name,
    Description,
    DefaultValue,
    Trim,
    Choices,
}

impl Field for ParamField {
    fn names(self) -> &'static [&'static str] {
        match self {
            ParamField::Name => &["name"],
            ParamField::Description => &["description"],
            ParamField::DefaultValue => &["defaultValue"],
            ParamField::Trim => &["trim"],
            ParamField::Choices => &["choices"],
        }
    }
}

const STRING_FIELDS: &[ParamField] = &[
    ParamField::Name,
    ParamField::Description,
    ParamField::DefaultValue,
    ParamField::Trim,
];
const BOOLEAN_FIELDS: &[ParamField] = &[
    ParamField::Name,
    ParamField::Description,
    ParamField::DefaultValue,
];
const CHOICE_FIELDS: &[ParamField] = &[
    ParamField::Name,
    ParamField::Description,
    ParamField::Choices,
];

/// The order Jenkins writes a parameter definition's children in.
const PARAMETER_ORDER: &[&str] = &["name", "description", "defaultValue", "trim", "choices"];

/// Reads one child of `<parameterDefinitions>`. Every parameter needs a name that can be an
/// environment variable's: not blank, no `=`, no control characters.
pub(crate) fn read_parameter(element: &Element) -> Result<ParameterDefinition, XmlError> {
    let mut name = String::new();
    let mut description = String::new();
    let mut common = |field: ParamField, child: &Element| match field {
        ParamField::Name => name = child.text().trim().to_owned(),
        ParamField::Description => description = child.text().trim().to_owned(),
        _ => {}
    };
    let parameter = match element.name.as_str() {
        STRING_PARAMETER => {
            let mut default_value = String::new();
            let mut trim = false;
            let layout = Layout::read(element, STRING_FIELDS, PARAMETER_ORDER, |field, child| {
                common(field, child);
                match field {
                    ParamField::DefaultValue => default_value = child.text(),
                    ParamField::Trim => trim = parse_bool("trim", &child.text())?,
                    _ => {}
                }
                Ok(())
            })?;
            ParameterDefinition::String(StringParameter {
                name,
                description,
                default_value,
                trim,
                layout,
            })
        }
        BOOLEAN_PARAMETER => {
            let mut default_value = false;
            let layout = Layout::read(element, BOOLEAN_FIELDS, PARAMETER_ORDER, |field, child| {
                common(field, child);
                if field == ParamField::DefaultValue {
                    default_value = parse_bool("defaultValue", &child.text())?;
                }
                Ok(())
            })?;
            ParameterDefinition::Boolean(BooleanParameter {
                name,
                description,
                default_value,
                layout,
            })
        }
        CHOICE_PARAMETER => {
            let mut choices = Vec::new();
            let layout = Layout::read(element, CHOICE_FIELDS, PARAMETER_ORDER, |field, child| {
                common(field, child);
                if field == ParamField::Choices {
                    choices = read_choices(child)?;
                }
                Ok(())
            })?;
            if choices.is_empty() {
                return Err(XmlError::bad_value(
                    "choices",
                    "",
                    format!("choice parameter ‘{name}’ needs at least one choice"),
                ));
            }
            ParameterDefinition::Choice(ChoiceParameter {
                name,
                description,
                choices,
                layout,
            })
        }
        _ => ParameterDefinition::Other(OtherParameter {
            element: element.clone(),
            name: element.child_text("name").unwrap_or_default(),
            description: element.child_text("description").unwrap_or_default(),
            default_value: element.child("defaultValue").map(Element::text),
        }),
    };
    check_name(parameter.name(), parameter.class())?;
    Ok(parameter)
}

fn check_name(name: &str, class: &str) -> Result<(), XmlError> {
    if name.is_empty() {
        return Err(XmlError::bad_value(
            "name",
            name,
            format!("every parameter needs a name; this {class} has none"),
        ));
    }
    if let Some(c) = name.chars().find(|c| *c == '=' || c.is_control()) {
        return Err(XmlError::bad_value(
            "name",
            name,
            format!("a parameter name is an environment variable's and cannot hold {c:?}"),
        ));
    }
    Ok(())
}

/// `<choices>` in either form Jenkins knows: a list (`<a class="string-array">` holding
/// `<string>`s, or the `<string>`s directly), or text with one choice a line. Choices in a
/// list are taken as written; lines are trimmed and blank ones skipped.
fn read_choices(choices: &Element) -> Result<Vec<String>, XmlError> {
    if choices.child_elements().next().is_none() {
        return Ok(choices
            .text()
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect());
    }
    let mut list = Vec::new();
    for child in choices.child_elements() {
        let strings: Vec<&Element> = if child.name == "string" {
            vec![child]
        } else {
            child.child_elements().collect()
        };
        for string in strings {
            if string.name != "string" || string.child_elements().next().is_some() {
                return Err(XmlError::bad_value(
                    "choices",
                    &string.name,
                    "expected <string> elements, or one choice a line",
                ));
            }
            list.push(string.text());
        }
    }
    Ok(list)
}

/// A boolean as Jenkins (XStream) reads it: `true` or `false` in any case, and an empty
/// element as `false`.
pub(crate) fn parse_bool(element: &str, text: &str) -> Result<bool, XmlError> {
    match text.trim() {
        t if t.eq_ignore_ascii_case("true") => Ok(true),
        t if t.eq_ignore_ascii_case("false") || t.is_empty() => Ok(false),
        other => Err(XmlError::bad_value(
            element,
            other,
            "expected true or false",
        )),
    }
}

/// Writes one child of `<parameterDefinitions>`.
pub(crate) fn write_parameter(parameter: &ParameterDefinition) -> Element {
    let text = |name: &str, value: &str| Element::with_text(name, value);
    let common =
        |field: ParamField, name: &str, description: &str, out: &mut Vec<Element>| match field {
            ParamField::Name => out.push(text("name", name)),
            ParamField::Description => out.push(text("description", description)),
            _ => {}
        };
    match parameter {
        ParameterDefinition::String(p) => p.layout.write(STRING_PARAMETER, |field, out| {
            common(field, &p.name, &p.description, out);
            match field {
                ParamField::DefaultValue => out.push(text("defaultValue", &p.default_value)),
                ParamField::Trim => out.push(text("trim", &p.trim.to_string())),
                _ => {}
            }
        }),
        ParameterDefinition::Boolean(p) => p.layout.write(BOOLEAN_PARAMETER, |field, out| {
            common(field, &p.name, &p.description, out);
            if field == ParamField::DefaultValue {
                out.push(text("defaultValue", &p.default_value.to_string()));
            }
        }),
        ParameterDefinition::Choice(p) => p.layout.write(CHOICE_PARAMETER, |field, out| {
            common(field, &p.name, &p.description, out);
            if field == ParamField::Choices {
                out.push(write_choices(&p.choices));
            }
        }),
        ParameterDefinition::Other(p) => p.element.clone(),
    }
}

/// The list form: `<choices class="java.util.Arrays$ArrayList"><a class="string-array">`.
fn write_choices(choices: &[String]) -> Element {
    let mut array = Element::new("a");
    array
        .attributes
        .push(("class".into(), STRING_ARRAY_CLASS.into()));
    array.children = choices
        .iter()
        .map(|c| Node::Element(Element::with_text("string", c)))
        .collect();
    let mut element = Element::new("choices");
    element
        .attributes
        .push(("class".into(), CHOICES_CLASS.into()));
    element.children.push(Node::Element(array));
    element
}
