//! Credentials as `list-credentials` and Jenkins' pages show them: a display name per
//! credential, and the table of a store's domain.

use super::{Credential, CredentialKind};
use crate::shown::shown;

/// What `list-credentials` and Jenkins' pages call a secret text with neither a description
/// nor an id of its own (a generated UUID).
pub const SECRET_TEXT_NAME: &str = "Secret text";

/// The heading of the widest label of the table's header.
const COUNT_LABEL: &str = "# of Credentials";

/// The credential's display name, as the plugins' name providers make it (the description,
/// when there is one, trimmed):
/// - username with password: `username/****** (description)`;
/// - secret text: the description, else the id unless it is a UUID, else `Secret text`;
/// - secret file: `file name (description)`;
/// - SSH private key: `username (description)`, or `id (description)` without a username.
pub fn display_name(credential: &Credential) -> String {
    let description = credential.description.trim();
    let with_description = |name: &str| {
        if description.is_empty() {
            name.to_owned()
        } else {
            format!("{name} ({description})")
        }
    };
    match &credential.kind {
        CredentialKind::UsernamePassword { username, .. } => {
            with_description(&format!("{username}/******"))
        }
        CredentialKind::SecretText { .. } if !description.is_empty() => description.to_owned(),
        CredentialKind::SecretText { .. } if is_uuid(&credential.id) => SECRET_TEXT_NAME.into(),
        CredentialKind::SecretText { .. } => credential.id.clone(),
        CredentialKind::SecretFile { file_name, .. } => with_description(file_name),
        // Jenkins names the key by the username, and by the id when that name is empty.
        CredentialKind::SshPrivateKey { username, .. } if !username.is_empty() => {
            with_description(username)
        }
        CredentialKind::SshPrivateKey { .. } => with_description(&credential.id),
    }
}

/// Whether `id` is a UUID in its usual form (8-4-4-4-12 hexadecimal digits), as the ids
/// Jenkins generates are.
fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A text's length as Java counts it (UTF-16 code units), which the plugin pads by.
fn java_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// `text` followed by spaces up to `width` Java characters (commons-lang `rightPad`).
fn right_pad(text: &str, width: usize) -> String {
    let mut padded = text.to_owned();
    padded.extend(std::iter::repeat_n(
        ' ',
        width.saturating_sub(java_len(text)),
    ));
    padded
}

/// What `list-credentials system::system::jenkins` prints for a store whose only domain is
/// the global one holding `credentials` in this order: the domain's header and its id/name
/// table, columns as wide as their longest entry, rules of `=`, each line ending in a line
/// feed, and a blank line after the table. Ids and names are shown with hidden characters
/// escaped ([`crate::shown`]), so a description cannot move the cursor.
pub fn render_list(credentials: &[Credential]) -> String {
    let rows: Vec<(String, String)> = credentials
        .iter()
        .map(|c| {
            (
                shown(&c.id).into_owned(),
                shown(&display_name(c)).into_owned(),
            )
        })
        .collect();
    let id_width = rows
        .iter()
        .map(|(id, _)| java_len(id))
        .fold(java_len(COUNT_LABEL), usize::max);
    let name_width = rows
        .iter()
        .map(|(_, name)| java_len(name))
        .max()
        .unwrap_or(0);
    let rule = "=".repeat(id_width + name_width + 1);
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push('\n');
    };
    line(&rule);
    line(&format!("{} (global)", right_pad("Domain", id_width)));
    // The global domain has no description: the label is followed by a space and nothing.
    line(&format!("{} ", right_pad("Description", id_width)));
    line(&format!(
        "{} {}",
        right_pad(COUNT_LABEL, id_width),
        rows.len()
    ));
    line(&rule);
    line(&format!("{} Name", right_pad("Id", id_width)));
    line(&format!(
        "{} {}",
        "=".repeat(id_width),
        "=".repeat(name_width)
    ));
    for (id, name) in &rows {
        line(&format!("{} {name}", right_pad(id, id_width)));
    }
    line(&rule);
    line("");
    out
}
