//! Reading a credentials document: the typed values out of the elements, each checked.

use base64::Engine;

use super::secret::{self, SecretBytes, SecretString};
use super::{
    Credential, CredentialError, CredentialKind, DIRECT_ENTRY_KEY_SOURCE, FILE_CREDENTIALS,
    MAX_DESCRIPTION_LEN, MAX_FILE_NAME_LEN, MAX_ID_LEN, MAX_QUOTED, MAX_SECRET_FILE_LEN,
    MAX_SECRET_TEXT_LEN, MAX_USERNAME_LEN, SECRET_REDACTED, SSH_PRIVATE_KEY, STRING_CREDENTIALS,
    Scope, USERNAME_PASSWORD, quoted, validate_id,
};
use crate::xml::{self, Element};

/// Reads a credentials document.
pub(super) fn credential(document: &str) -> Result<Credential, CredentialError> {
    let root = xml::parse_document(document)?;
    let kind = match root.name.as_str() {
        USERNAME_PASSWORD => CredentialKind::UsernamePassword {
            username: text(&root, "username", MAX_USERNAME_LEN)?.unwrap_or_default(),
            password: required(
                secret(&root, "password")?,
                "password",
                "username with password",
            )?,
            username_secret: flag(&root, "usernameSecret")?,
        },
        STRING_CREDENTIALS => CredentialKind::SecretText {
            secret: required(secret(&root, "secret")?, "secret", "secret text")?,
        },
        FILE_CREDENTIALS => {
            let file_name = text(&root, "fileName", MAX_FILE_NAME_LEN)?.unwrap_or_default();
            validate_file_name(&file_name)?;
            let content = required(secret_bytes(&root)?, "secretBytes", "secret file")?;
            CredentialKind::SecretFile { file_name, content }
        }
        SSH_PRIVATE_KEY => read_ssh_key(&root)?,
        other => return Err(CredentialError::UnknownKind(quoted(other))),
    };
    let id = text(&root, "id", MAX_ID_LEN)?.unwrap_or_default();
    if !id.is_empty() {
        validate_id(&id)?;
    }
    Ok(Credential {
        id,
        description: text(&root, "description", MAX_DESCRIPTION_LEN)?.unwrap_or_default(),
        scope: read_scope(&root)?,
        kind,
    })
}

/// Checks a secret file's name: the agent writes the file under it, so it is one plain name.
fn validate_file_name(name: &str) -> Result<(), CredentialError> {
    let bad = |reason| CredentialError::BadFileName {
        name: quoted(name),
        reason,
    };
    if name.is_empty() {
        return Err(bad("a secret file needs a name"));
    }
    if name == "." || name == ".." || name.contains(['/', '\\']) {
        return Err(bad("a file name cannot be a path"));
    }
    if name.chars().any(crate::shown::is_hidden) {
        return Err(bad(
            "a file name cannot hold control or invisible characters",
        ));
    }
    Ok(())
}

fn read_ssh_key(root: &Element) -> Result<CredentialKind, CredentialError> {
    const KIND: &str = "SSH username with private key";
    let source = required(
        root.only_child("privateKeySource")?,
        "privateKeySource",
        KIND,
    )?;
    match source.attribute("class") {
        Some(DIRECT_ENTRY_KEY_SOURCE) => {}
        Some(other) => return Err(CredentialError::UnsupportedKeySource(quoted(other))),
        None => return Err(CredentialError::UnsupportedKeySource(String::new())),
    }
    let key = required(secret(source, "privateKey")?, "privateKey", KIND)?;
    Ok(CredentialKind::SshPrivateKey {
        username: text(root, "username", MAX_USERNAME_LEN)?.unwrap_or_default(),
        username_secret: flag(root, "usernameSecret")?,
        private_key: SecretString::new(key.expose().trim()),
        passphrase: secret(root, "passphrase")?.filter(|p| !p.is_empty()),
    })
}

fn read_scope(root: &Element) -> Result<Scope, CredentialError> {
    match text(root, "scope", MAX_QUOTED)?.as_deref() {
        None | Some("") | Some("GLOBAL") => Ok(Scope::Global),
        Some("SYSTEM") => Ok(Scope::System),
        Some(other) => Err(CredentialError::BadScope(quoted(other))),
    }
}

fn required<T>(
    value: Option<T>,
    element: &'static str,
    kind: &'static str,
) -> Result<T, CredentialError> {
    value.ok_or(CredentialError::Missing { element, kind })
}

/// The one child `name` of `parent`, refused when it holds elements rather than text.
fn text_element<'a>(
    parent: &'a Element,
    name: &'static str,
) -> Result<Option<&'a Element>, CredentialError> {
    let Some(element) = parent.only_child(name)? else {
        return Ok(None);
    };
    match element.child_elements().next() {
        None => Ok(Some(element)),
        Some(child) if child.name == SECRET_REDACTED => Err(CredentialError::Redacted(name)),
        Some(_) => Err(CredentialError::NotText(name)),
    }
}

/// The trimmed text of the child `name`, at most `max` bytes.
fn text(
    parent: &Element,
    name: &'static str,
    max: usize,
) -> Result<Option<String>, CredentialError> {
    let Some(element) = text_element(parent, name)? else {
        return Ok(None);
    };
    let text = element.text().trim().to_owned();
    if text.len() > max {
        return Err(CredentialError::TooLong {
            element: name,
            len: text.len(),
            max,
        });
    }
    Ok(Some(text))
}

/// The secret text of the child `name`, as written.
fn secret(parent: &Element, name: &'static str) -> Result<Option<SecretString>, CredentialError> {
    let Some(element) = text_element(parent, name)? else {
        return Ok(None);
    };
    let value = element.text();
    if value.len() > MAX_SECRET_TEXT_LEN {
        return Err(CredentialError::TooLong {
            element: name,
            len: value.len(),
            max: MAX_SECRET_TEXT_LEN,
        });
    }
    if secret::is_encrypted_secret(&value) {
        return Err(CredentialError::Encrypted(name));
    }
    Ok(Some(SecretString::new(value)))
}

/// `<secretBytes>`: the file's content in base64 (line breaks and padding optional).
fn secret_bytes(root: &Element) -> Result<Option<SecretBytes>, CredentialError> {
    const NAME: &str = "secretBytes";
    let Some(element) = text_element(root, NAME)? else {
        return Ok(None);
    };
    let mut value = element.text();
    value.retain(|c| !c.is_ascii_whitespace());
    if secret::is_encrypted_bytes(&value) {
        return Err(CredentialError::Encrypted(NAME));
    }
    // Base64 takes 4 characters for 3 bytes: refuse before decoding what is too large.
    if value.len() / 4 * 3 > MAX_SECRET_FILE_LEN {
        return Err(CredentialError::TooLong {
            element: NAME,
            len: value.len() / 4 * 3,
            max: MAX_SECRET_FILE_LEN,
        });
    }
    let content = secret::LENIENT_BASE64
        .decode(&value)
        .map_err(|_| CredentialError::BadBase64)?;
    Ok(Some(SecretBytes::new(content)))
}

/// `<usernameSecret>`, `true` or `false` in any case, as XStream reads a boolean.
fn flag(root: &Element, name: &'static str) -> Result<Option<bool>, CredentialError> {
    let Some(value) = text(root, name, MAX_QUOTED)? else {
        return Ok(None);
    };
    if value.eq_ignore_ascii_case("true") {
        Ok(Some(true))
    } else if value.eq_ignore_ascii_case("false") {
        Ok(Some(false))
    } else {
        Err(CredentialError::BadBool {
            element: name,
            value: quoted(&value),
        })
    }
}
