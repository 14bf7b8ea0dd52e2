//! The actions Jenkins attaches to builds and queue items, as its REST API shows them: the
//! parameters (`hudson.model.ParametersAction`, each value typed by its definition) and the
//! causes (`hudson.model.CauseAction`), plus the parameter definitions a job shows.

use serde_json::{Value, json};
use steward_protocol::job_xml::{JobConfig, PARAMETERS_PROPERTY, ParameterDefinition};

use crate::store::builds::CauseKind;

/// A parameter's class names a password: its value is never shown.
fn is_secret(definition: Option<&ParameterDefinition>) -> bool {
    definition.is_some_and(ParameterDefinition::is_secret)
}

fn definition<'a>(config: Option<&'a JobConfig>, name: &str) -> Option<&'a ParameterDefinition> {
    config.and_then(|c| c.parameters.iter().find(|p| p.name() == name))
}

/// One parameter value, typed as Jenkins types it: a boolean parameter's value is a JSON
/// boolean, a choice's is a string value, another class's value class is its definition
/// class with `Definition` changed to `Value`.
pub fn parameter_value(definition: Option<&ParameterDefinition>, name: &str, value: &str) -> Value {
    match definition {
        Some(ParameterDefinition::Boolean(_)) => json!({
            "_class": "hudson.model.BooleanParameterValue",
            "name": name,
            "value": value == "true",
        }),
        Some(other @ ParameterDefinition::Other(_)) => {
            let class = other.class().replace("Definition", "Value");
            if is_secret(Some(other)) {
                json!({"_class": class, "name": name})
            } else {
                json!({"_class": class, "name": name, "value": value})
            }
        }
        _ => json!({
            "_class": "hudson.model.StringParameterValue",
            "name": name,
            "value": value,
        }),
    }
}

/// `{"_class": "hudson.model.ParametersAction", "parameters": [...]}`, with each value typed
/// by the definition of the same name in `config` (the job's configuration when the build
/// started, or now for a queued one).
pub fn parameters_action(config: Option<&JobConfig>, params: &[(String, String)]) -> Value {
    let parameters: Vec<Value> = params
        .iter()
        .map(|(name, value)| parameter_value(definition(config, name), name, value))
        .collect();
    json!({"_class": "hudson.model.ParametersAction", "parameters": parameters})
}

/// `{"_class": "hudson.model.CauseAction", "causes": [...]}` with the one cause Steward
/// records.
pub fn cause_action(cause: CauseKind, user: &str) -> Value {
    let mut shown = json!({"_class": cause.class(), "shortDescription": cause.describe(user)});
    match cause {
        CauseKind::Cli => shown["startedBy"] = json!(user),
        CauseKind::User => {
            shown["userId"] = json!(user);
            shown["userName"] = json!(user);
        }
        CauseKind::Upstream => {
            if let Some((job, number)) = crate::store::builds::parse_upstream(user) {
                shown["upstreamBuild"] = json!(number);
                shown["upstreamProject"] = json!(job);
                let segment = url::form_urlencoded::byte_serialize(job.as_bytes())
                    .collect::<String>()
                    .replace('+', "%20");
                shown["upstreamUrl"] = json!(format!("job/{segment}/"));
            }
        }
        CauseKind::Timer | CauseKind::ScmChange | CauseKind::GitHubPush => {}
    }
    json!({"_class": "hudson.model.CauseAction", "causes": [shown]})
}

/// The actions of a build or queue item: its parameters (when it has any), then its cause.
pub fn actions(
    config: Option<&JobConfig>,
    params: &[(String, String)],
    cause: CauseKind,
    user: &str,
) -> Vec<Value> {
    let mut actions = Vec::with_capacity(2);
    if !params.is_empty() {
        actions.push(parameters_action(config, params));
    }
    actions.push(cause_action(cause, user));
    actions
}

/// A queue item's `params`: `\nNAME=VALUE` per parameter, as Jenkins writes them (a
/// password as `****`).
pub fn params_text(config: Option<&JobConfig>, params: &[(String, String)]) -> String {
    let mut text = String::new();
    for (name, value) in params {
        let definition = definition(config, name);
        text.push('\n');
        text.push_str(&match definition {
            _ if is_secret(definition) => format!("{name}=****"),
            // `NAME=VALUE`, unquoted, as Jenkins writes it since JENKINS-17454.
            _ => format!("{name}={value}"),
        });
    }
    text
}

/// A job's `property` list: its parameter definitions as Jenkins shows them, when it has
/// any.
pub fn job_properties(config: &JobConfig) -> Vec<Value> {
    if config.parameters.is_empty() {
        return Vec::new();
    }
    let definitions: Vec<Value> = config
        .parameters
        .iter()
        .map(|p| {
            let class = p.class();
            let mut shown = json!({
                "_class": class,
                "defaultParameterValue": parameter_value(Some(p), p.name(), &p.default_value()),
                "description": p.description(),
                "name": p.name(),
                "type": class.rsplit('.').next().unwrap_or(class),
            });
            if let ParameterDefinition::Choice(choice) = p {
                shown["choices"] = json!(choice.choices);
            }
            shown
        })
        .collect();
    vec![json!({"_class": PARAMETERS_PROPERTY, "parameterDefinitions": definitions})]
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<project><properties><hudson.model.ParametersDefinitionProperty><parameterDefinitions>
      <hudson.model.StringParameterDefinition><name>BRANCH</name><defaultValue>main</defaultValue></hudson.model.StringParameterDefinition>
      <hudson.model.BooleanParameterDefinition><name>FAST</name><defaultValue>true</defaultValue></hudson.model.BooleanParameterDefinition>
      <hudson.model.ChoiceParameterDefinition><name>OS</name><choices class="java.util.Arrays$ArrayList"><a class="string-array"><string>linux</string><string>mac</string></a></choices></hudson.model.ChoiceParameterDefinition>
      <hudson.model.PasswordParameterDefinition><name>PW</name><defaultValue>{AQAA}</defaultValue></hudson.model.PasswordParameterDefinition>
    </parameterDefinitions></hudson.model.ParametersDefinitionProperty></properties></project>"#;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_are_typed_by_their_definitions_and_passwords_hidden() {
        let config = JobConfig::from_xml(XML).unwrap();
        let params = pairs(&[
            ("BRANCH", "dev"),
            ("FAST", "false"),
            ("OS", "mac"),
            ("PW", "s3"),
        ]);
        assert_eq!(
            parameters_action(Some(&config), &params),
            json!({"_class": "hudson.model.ParametersAction", "parameters": [
                {"_class": "hudson.model.StringParameterValue", "name": "BRANCH", "value": "dev"},
                {"_class": "hudson.model.BooleanParameterValue", "name": "FAST", "value": false},
                {"_class": "hudson.model.StringParameterValue", "name": "OS", "value": "mac"},
                {"_class": "hudson.model.PasswordParameterValue", "name": "PW"},
            ]})
        );
        assert_eq!(
            params_text(Some(&config), &params),
            "\nBRANCH=dev\nFAST=false\nOS=mac\nPW=****"
        );
        // Without the definitions (a deleted job), values are strings.
        assert_eq!(
            parameters_action(None, &pairs(&[("FAST", "true")]))["parameters"][0]["value"],
            "true"
        );
    }

    #[test]
    fn causes_read_as_jenkins_writes_them() {
        assert_eq!(
            cause_action(CauseKind::Cli, "admin"),
            json!({"_class": "hudson.model.CauseAction", "causes": [{
                "_class": "hudson.cli.BuildCommand$CLICause",
                "shortDescription": "Started from command line by admin",
                "startedBy": "admin",
            }]})
        );
        assert_eq!(
            cause_action(CauseKind::User, "alice")["causes"][0]["shortDescription"],
            "Started by user alice"
        );
        assert_eq!(actions(None, &[], CauseKind::User, "a").len(), 1);
    }

    #[test]
    fn parameter_definitions_show_defaults_and_choices() {
        let config = JobConfig::from_xml(XML).unwrap();
        let property = &job_properties(&config)[0];
        assert_eq!(property["_class"], PARAMETERS_PROPERTY);
        let definitions = property["parameterDefinitions"].as_array().unwrap();
        assert_eq!(definitions[0]["type"], "StringParameterDefinition");
        assert_eq!(definitions[0]["defaultParameterValue"]["value"], "main");
        assert_eq!(definitions[1]["defaultParameterValue"]["value"], true);
        assert_eq!(definitions[2]["choices"], json!(["linux", "mac"]));
        assert_eq!(definitions[3]["defaultParameterValue"].get("value"), None);
        assert!(job_properties(&JobConfig::new()).is_empty());
    }
}
