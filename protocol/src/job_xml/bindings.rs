//! "Use secret text(s) or file(s)": the credentials-binding plugin's build wrapper, which
//! puts credentials into a build's environment (and files) and masks them in its console.
//!
//! ```xml
//! <buildWrappers>
//!   <org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper plugin="credentials-binding@681">
//!     <bindings>
//!       <org.jenkinsci.plugins.credentialsbinding.impl.StringBinding>
//!         <credentialsId>token</credentialsId>
//!         <variable>TOKEN</variable>
//!       </org.jenkinsci.plugins.credentialsbinding.impl.StringBinding>
//!     </bindings>
//!   </org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper>
//! </buildWrappers>
//! ```
//!
//! The element stays in the job as written; this is a reading of it. Bindings of other
//! classes are named as ignored.

use crate::xml::{Element, XmlError};

pub const SECRET_BUILD_WRAPPER: &str =
    "org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper";
const IMPL: &str = "org.jenkinsci.plugins.credentialsbinding.impl.";
/// Most bindings one wrapper holds.
pub const MAX_BINDINGS: usize = 64;

/// One binding: which credential, and the variables it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// `UsernamePasswordMultiBinding`: the username and the password in two variables.
    UsernamePasswordMulti {
        id: String,
        username_variable: String,
        password_variable: String,
    },
    /// `UsernamePasswordBinding`: `username:password` in one variable.
    UsernamePassword { id: String, variable: String },
    /// `StringBinding`: a secret text.
    Text { id: String, variable: String },
    /// `FileBinding`: the path of a file holding the secret file's content.
    File { id: String, variable: String },
    /// `SSHUserPrivateKeyBinding`: the path of a file holding the key, and optionally the
    /// passphrase and the username.
    SshKey {
        id: String,
        key_file_variable: String,
        passphrase_variable: Option<String>,
        username_variable: Option<String>,
    },
}

impl Binding {
    pub fn credentials_id(&self) -> &str {
        match self {
            Binding::UsernamePasswordMulti { id, .. }
            | Binding::UsernamePassword { id, .. }
            | Binding::Text { id, .. }
            | Binding::File { id, .. }
            | Binding::SshKey { id, .. } => id,
        }
    }
}

/// The wrapper's bindings, and the classes of those Steward does not carry out.
pub fn read_wrapper(wrapper: &Element) -> Result<(Vec<Binding>, Vec<String>), XmlError> {
    let mut bindings = Vec::new();
    let mut others = Vec::new();
    let Some(list) = wrapper.only_child("bindings")? else {
        return Ok((bindings, others));
    };
    for binding in list.child_elements() {
        if bindings.len() + others.len() == MAX_BINDINGS {
            return Err(XmlError::bad_value(
                "bindings",
                "",
                format!("more than {MAX_BINDINGS} bindings"),
            ));
        }
        let id = || required(binding, "credentialsId");
        let variable = |name: &str| required(binding, name).and_then(|v| check_variable(name, v));
        let optional = |name: &str| match binding.child_text(name).filter(|v| !v.is_empty()) {
            Some(v) => check_variable(name, v).map(Some),
            None => Ok(None),
        };
        let read = match binding.name.strip_prefix(IMPL) {
            Some("UsernamePasswordMultiBinding") => Binding::UsernamePasswordMulti {
                id: id()?,
                username_variable: variable("usernameVariable")?,
                password_variable: variable("passwordVariable")?,
            },
            Some("UsernamePasswordBinding") => Binding::UsernamePassword {
                id: id()?,
                variable: variable("variable")?,
            },
            Some("StringBinding") => Binding::Text {
                id: id()?,
                variable: variable("variable")?,
            },
            Some("FileBinding") => Binding::File {
                id: id()?,
                variable: variable("variable")?,
            },
            Some("SSHUserPrivateKeyBinding") => Binding::SshKey {
                id: id()?,
                key_file_variable: variable("keyFileVariable")?,
                passphrase_variable: optional("passphraseVariable")?,
                username_variable: optional("usernameVariable")?,
            },
            _ => {
                others.push(binding.name.clone());
                continue;
            }
        };
        bindings.push(read);
    }
    Ok((bindings, others))
}

fn required(parent: &Element, name: &str) -> Result<String, XmlError> {
    match parent.child_text(name).filter(|v| !v.is_empty()) {
        Some(value) => Ok(value),
        None => Err(XmlError::bad_value(
            name,
            "",
            format!("<{}> needs it", parent.name),
        )),
    }
}

/// A variable name a shell can set: letters, digits and `_`, not starting with a digit.
fn check_variable(element: &str, name: String) -> Result<String, XmlError> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 256;
    if valid {
        Ok(name)
    } else {
        Err(XmlError::bad_value(
            element,
            &name,
            "not a variable name (letters, digits and '_', not starting with a digit)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse_document;

    #[test]
    fn every_binding_is_read_and_others_named() {
        let xml = r#"<org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper><bindings>
          <org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordMultiBinding><credentialsId>up</credentialsId><usernameVariable>U</usernameVariable><passwordVariable>P</passwordVariable></org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordMultiBinding>
          <org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordBinding><credentialsId>up</credentialsId><variable>UP</variable></org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordBinding>
          <org.jenkinsci.plugins.credentialsbinding.impl.StringBinding><credentialsId>t</credentialsId><variable>T</variable></org.jenkinsci.plugins.credentialsbinding.impl.StringBinding>
          <org.jenkinsci.plugins.credentialsbinding.impl.FileBinding><credentialsId>f</credentialsId><variable>F</variable></org.jenkinsci.plugins.credentialsbinding.impl.FileBinding>
          <org.jenkinsci.plugins.credentialsbinding.impl.SSHUserPrivateKeyBinding><credentialsId>k</credentialsId><keyFileVariable>K</keyFileVariable><passphraseVariable></passphraseVariable><usernameVariable>KU</usernameVariable></org.jenkinsci.plugins.credentialsbinding.impl.SSHUserPrivateKeyBinding>
          <com.cloudbees.jenkins.plugins.awscredentials.AmazonWebServicesCredentialsBinding><credentialsId>aws</credentialsId></com.cloudbees.jenkins.plugins.awscredentials.AmazonWebServicesCredentialsBinding>
        </bindings></org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper>"#;
        let (bindings, others) = read_wrapper(&parse_document(xml).unwrap()).unwrap();
        assert_eq!(bindings.len(), 5);
        assert_eq!(
            bindings[4],
            Binding::SshKey {
                id: "k".into(),
                key_file_variable: "K".into(),
                passphrase_variable: None,
                username_variable: Some("KU".into()),
            }
        );
        assert_eq!(
            others,
            ["com.cloudbees.jenkins.plugins.awscredentials.AmazonWebServicesCredentialsBinding"]
        );
    }

    #[test]
    fn bad_variables_and_missing_ids_are_named() {
        let with = |inner: &str| {
            let xml = format!(
                "<w><bindings><org.jenkinsci.plugins.credentialsbinding.impl.StringBinding>{inner}</org.jenkinsci.plugins.credentialsbinding.impl.StringBinding></bindings></w>"
            );
            read_wrapper(&parse_document(&xml).unwrap())
                .unwrap_err()
                .to_string()
        };
        assert!(with("<variable>T</variable>").contains("credentialsId"));
        assert!(
            with("<credentialsId>t</credentialsId><variable>1T</variable>")
                .contains("not a variable name")
        );
    }
}
