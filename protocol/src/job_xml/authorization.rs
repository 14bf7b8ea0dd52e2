//! A job's own permission grants: the matrix-auth plugin's project-based matrix, as Jenkins
//! writes it.
//!
//! ```xml
//! <properties>
//!   <hudson.security.AuthorizationMatrixProperty>
//!     <inheritanceStrategy class="org.jenkinsci.plugins.matrixauth.inheritance.InheritParentStrategy"/>
//!     <permission>USER:hudson.model.Item.Build:alice</permission>
//!     <permission>GROUP:hudson.model.Item.Read:authenticated</permission>
//!     <permission>hudson.model.Item.Cancel:bob</permission>
//!   </hudson.security.AuthorizationMatrixProperty>
//! </properties>
//! ```
//!
//! Each `<permission>` is `KIND:PERMISSION_ID:SID` (matrix-auth 3.0 and later; `KIND` is
//! `USER`, `GROUP` or `EITHER`) or, in jobs written before it, `PERMISSION_ID:SID`, read as
//! `EITHER`. Only the first `:` after the kind and the permission id split: a SID may hold
//! `:`. The strategy is `InheritParentStrategy` (the default: the job's grants add to the
//! global ones), `InheritGlobalStrategy` (the same here, with no folders) or
//! `NonInheritingStrategy` (only the job's grants count, and Overall/Administer).
//! Permission ids stay text: which ones mean something is the controller's business, and a
//! plugin's permission Steward does not have is kept and grants nothing. The element stays in
//! the document as written; this is only a reading of it.

use crate::xml::{Element, XmlError};

/// The property holding a job's grants.
pub const MATRIX_PROPERTY: &str = "hudson.security.AuthorizationMatrixProperty";
/// The strategy under which only the job's own grants (and Overall/Administer) count.
pub const NON_INHERITING: &str =
    "org.jenkinsci.plugins.matrixauth.inheritance.NonInheritingStrategy";
/// The strategies that add the job's grants to the global ones.
const INHERITING: &[&str] = &[
    "org.jenkinsci.plugins.matrixauth.inheritance.InheritParentStrategy",
    "org.jenkinsci.plugins.matrixauth.inheritance.InheritGlobalStrategy",
];
/// Most grants one job may hold.
pub const MAX_GRANTS: usize = 1024;

/// Whom a grant names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidKind {
    User,
    Group,
    /// The old form, or `EITHER:`: a user or a group of that name.
    Either,
}

/// One `<permission>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub kind: SidKind,
    /// As written (`hudson.model.Item.Build`).
    pub permission: String,
    pub sid: String,
}

impl Grant {
    /// Whether the grant names the user `name` (not a pseudo-user).
    pub fn names_user(&self, name: &str) -> bool {
        self.kind != SidKind::Group && self.sid == name
    }

    /// Whether the grant names the pseudo-user `authenticated` (a group in matrix-auth).
    pub fn names_authenticated(&self) -> bool {
        self.kind != SidKind::User && self.sid == "authenticated"
    }

    /// Whether the grant names the pseudo-user `anonymous` (a user in matrix-auth).
    pub fn names_anonymous(&self) -> bool {
        self.kind != SidKind::Group && self.sid == "anonymous"
    }
}

/// A job's grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobMatrix {
    /// Whether the global grants count too (every strategy but `NonInheritingStrategy`).
    pub inherits: bool,
    pub grants: Vec<Grant>,
}

/// Reads the property; a line that is not `[KIND:]PERMISSION:SID` or an unknown strategy is
/// an error naming it.
pub(super) fn read_property(property: &Element) -> Result<JobMatrix, XmlError> {
    let mut matrix = JobMatrix {
        inherits: true,
        grants: Vec::new(),
    };
    for child in property.child_elements() {
        match child.name.as_str() {
            "inheritanceStrategy" => {
                let class = child.attribute("class").unwrap_or_default();
                if class == NON_INHERITING {
                    matrix.inherits = false;
                } else if !INHERITING.contains(&class) {
                    return Err(XmlError::bad_value(
                        "inheritanceStrategy",
                        class,
                        "the strategies are InheritParentStrategy, InheritGlobalStrategy and \
                         NonInheritingStrategy of org.jenkinsci.plugins.matrixauth.inheritance",
                    ));
                }
            }
            "permission" => {
                if matrix.grants.len() == MAX_GRANTS {
                    return Err(XmlError::bad_value(
                        "permission",
                        &child.text(),
                        format!("a job holds at most {MAX_GRANTS} grants"),
                    ));
                }
                matrix.grants.push(parse_grant(child.text().trim())?);
            }
            _ => {}
        }
    }
    Ok(matrix)
}

/// `KIND:PERMISSION:SID` or `PERMISSION:SID`.
pub fn parse_grant(text: &str) -> Result<Grant, XmlError> {
    let bad = |reason: &str| XmlError::bad_value("permission", text, reason);
    let (kind, rest) = match text.split_once(':') {
        Some(("USER", rest)) => (SidKind::User, rest),
        Some(("GROUP", rest)) => (SidKind::Group, rest),
        Some(("EITHER", rest)) => (SidKind::Either, rest),
        _ => (SidKind::Either, text),
    };
    let Some((permission, sid)) = rest.split_once(':') else {
        return Err(bad(
            "write TYPE:PERMISSION:SID (TYPE is USER, GROUP or EITHER) or PERMISSION:SID",
        ));
    };
    if permission.is_empty() || sid.is_empty() {
        return Err(bad(
            "the permission and the user or group must not be empty",
        ));
    }
    Ok(Grant {
        kind,
        permission: permission.to_owned(),
        sid: sid.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse_document as parse;

    fn read(xml: &str) -> Result<JobMatrix, XmlError> {
        read_property(&parse(xml).unwrap())
    }

    #[test]
    fn both_forms_and_the_strategies_are_read() {
        let matrix = read(
            "<hudson.security.AuthorizationMatrixProperty>\
             <inheritanceStrategy class='org.jenkinsci.plugins.matrixauth.inheritance.NonInheritingStrategy'/>\
             <permission>USER:hudson.model.Item.Build:alice</permission>\
             <permission>GROUP:hudson.model.Item.Read:authenticated</permission>\
             <permission> hudson.model.Item.Cancel:bob </permission>\
             <permission>EITHER:hudson.model.Item.Read:domain:user</permission>\
             </hudson.security.AuthorizationMatrixProperty>",
        )
        .unwrap();
        assert!(!matrix.inherits);
        let grant = |kind, permission: &str, sid: &str| Grant {
            kind,
            permission: permission.into(),
            sid: sid.into(),
        };
        assert_eq!(
            matrix.grants,
            [
                grant(SidKind::User, "hudson.model.Item.Build", "alice"),
                grant(SidKind::Group, "hudson.model.Item.Read", "authenticated"),
                grant(SidKind::Either, "hudson.model.Item.Cancel", "bob"),
                grant(SidKind::Either, "hudson.model.Item.Read", "domain:user"),
            ]
        );
        assert!(matrix.grants[0].names_user("alice") && !matrix.grants[0].names_user("bob"));
        assert!(
            matrix.grants[1].names_authenticated() && !matrix.grants[1].names_user("authenticated")
        );
        assert!(read("<p/>").unwrap().inherits, "inheriting by default");
    }

    #[test]
    fn bad_lines_and_strategies_are_named() {
        let bad = read("<p><permission>hudson.model.Item.Build</permission></p>").unwrap_err();
        assert!(bad.to_string().contains("hudson.model.Item.Build"), "{bad}");
        assert!(bad.to_string().contains("PERMISSION:SID"), "{bad}");
        let empty = read("<p><permission>USER::alice</permission></p>").unwrap_err();
        assert!(empty.to_string().contains("must not be empty"), "{empty}");
        let strategy = read("<p><inheritanceStrategy class='x.Y'/></p>").unwrap_err();
        assert!(strategy.to_string().contains("x.Y"), "{strategy}");
    }
}
