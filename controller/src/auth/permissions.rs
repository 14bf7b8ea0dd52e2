//! Permissions as Jenkins' matrix-based authorization names them: the groups and names its
//! messages use (`Job/Build`), the ids its `config.xml` uses (`hudson.model.Item.Build`),
//! the implications between them, and sets of them.

/// A permission, named in messages as Jenkins names it (`Job/Build`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    OverallAdminister,
    OverallRead,
    AgentBuild,
    AgentConfigure,
    AgentConnect,
    AgentCreate,
    AgentDelete,
    AgentDisconnect,
    AgentExtendedRead,
    /// Run processes and read or write files on an agent (our own).
    AgentExec,
    JobBuild,
    JobCancel,
    JobConfigure,
    JobCreate,
    JobDelete,
    JobRead,
    /// Read a job's configuration XML.
    JobExtendedRead,
    JobWorkspace,
    /// Open an SSH session into a running build's workspace, and hold, extend or resume its
    /// breakpoint (our own).
    JobDebug,
    /// Delete a build's record and console.
    RunDelete,
    /// Change a build's record (keep it forever, its description and display name).
    RunUpdate,
    /// Change a view's configuration.
    ViewConfigure,
    ViewCreate,
    ViewDelete,
    /// See a view (also given by View/Configure, or by a job in it the caller can read).
    ViewRead,
    /// Attach to a terminal, read-write or read-only (our own).
    TerminalAttach,
    /// Create, change, start, stop and delete terminals, and read their recordings (our
    /// own).
    TerminalConfigure,
    /// List credentials and read them without their secrets.
    CredentialsView,
    CredentialsCreate,
    CredentialsUpdate,
    CredentialsDelete,
    CredentialsManageDomains,
}

use Permission::*;

/// Every permission, in the order `list-permissions` shows them.
pub const ALL: &[Permission] = &[
    OverallAdminister,
    OverallRead,
    AgentBuild,
    AgentConfigure,
    AgentConnect,
    AgentCreate,
    AgentDelete,
    AgentDisconnect,
    AgentExtendedRead,
    AgentExec,
    JobBuild,
    JobCancel,
    JobConfigure,
    JobCreate,
    JobDelete,
    JobRead,
    JobExtendedRead,
    JobWorkspace,
    JobDebug,
    RunDelete,
    RunUpdate,
    ViewConfigure,
    ViewCreate,
    ViewDelete,
    ViewRead,
    TerminalAttach,
    TerminalConfigure,
    CredentialsView,
    CredentialsCreate,
    CredentialsUpdate,
    CredentialsDelete,
    CredentialsManageDomains,
];

impl Permission {
    /// `Group/Name`, as Jenkins' messages write it.
    pub fn display_name(self) -> &'static str {
        match self {
            OverallRead => "Overall/Read",
            OverallAdminister => "Overall/Administer",
            AgentBuild => "Agent/Build",
            AgentCreate => "Agent/Create",
            AgentConfigure => "Agent/Configure",
            AgentDelete => "Agent/Delete",
            AgentConnect => "Agent/Connect",
            AgentDisconnect => "Agent/Disconnect",
            AgentExtendedRead => "Agent/ExtendedRead",
            AgentExec => "Agent/Exec",
            JobCreate => "Job/Create",
            JobConfigure => "Job/Configure",
            JobDelete => "Job/Delete",
            JobRead => "Job/Read",
            JobExtendedRead => "Job/ExtendedRead",
            JobBuild => "Job/Build",
            JobCancel => "Job/Cancel",
            JobWorkspace => "Job/Workspace",
            JobDebug => "Job/Debug",
            RunDelete => "Run/Delete",
            RunUpdate => "Run/Update",
            ViewConfigure => "View/Configure",
            ViewCreate => "View/Create",
            ViewDelete => "View/Delete",
            ViewRead => "View/Read",
            TerminalAttach => "Terminal/Attach",
            TerminalConfigure => "Terminal/Configure",
            CredentialsView => "Credentials/View",
            CredentialsCreate => "Credentials/Create",
            CredentialsUpdate => "Credentials/Update",
            CredentialsDelete => "Credentials/Delete",
            CredentialsManageDomains => "Credentials/ManageDomains",
        }
    }

    /// The id Jenkins' `config.xml` (and the matrix property) writes.
    pub fn id(self) -> &'static str {
        match self {
            OverallRead => "hudson.model.Hudson.Read",
            OverallAdminister => "hudson.model.Hudson.Administer",
            AgentBuild => "hudson.model.Computer.Build",
            AgentCreate => "hudson.model.Computer.Create",
            AgentConfigure => "hudson.model.Computer.Configure",
            AgentDelete => "hudson.model.Computer.Delete",
            AgentConnect => "hudson.model.Computer.Connect",
            AgentDisconnect => "hudson.model.Computer.Disconnect",
            AgentExtendedRead => "hudson.model.Computer.ExtendedRead",
            AgentExec => "steward.Computer.Exec",
            JobCreate => "hudson.model.Item.Create",
            JobConfigure => "hudson.model.Item.Configure",
            JobDelete => "hudson.model.Item.Delete",
            JobRead => "hudson.model.Item.Read",
            JobExtendedRead => "hudson.model.Item.ExtendedRead",
            JobBuild => "hudson.model.Item.Build",
            JobCancel => "hudson.model.Item.Cancel",
            JobWorkspace => "hudson.model.Item.Workspace",
            JobDebug => "steward.Item.Debug",
            RunDelete => "hudson.model.Run.Delete",
            RunUpdate => "hudson.model.Run.Update",
            ViewConfigure => "hudson.model.View.Configure",
            ViewCreate => "hudson.model.View.Create",
            ViewDelete => "hudson.model.View.Delete",
            ViewRead => "hudson.model.View.Read",
            TerminalAttach => "steward.Terminal.Attach",
            TerminalConfigure => "steward.Terminal.Configure",
            CredentialsView => "com.cloudbees.plugins.credentials.CredentialsProvider.View",
            CredentialsCreate => "com.cloudbees.plugins.credentials.CredentialsProvider.Create",
            CredentialsUpdate => "com.cloudbees.plugins.credentials.CredentialsProvider.Update",
            CredentialsDelete => "com.cloudbees.plugins.credentials.CredentialsProvider.Delete",
            CredentialsManageDomains => {
                "com.cloudbees.plugins.credentials.CredentialsProvider.ManageDomains"
            }
        }
    }

    /// Reads a permission by its display name (`Job/Build`, also `Computer/Build`), its id
    /// (`hudson.model.Item.Build`), case aside.
    pub fn parse(text: &str) -> Option<Permission> {
        let text = text.trim();
        let computer = text
            .strip_prefix("Computer/")
            .or_else(|| text.strip_prefix("computer/"))
            .map(|rest| format!("Agent/{rest}"));
        let wanted = computer.as_deref().unwrap_or(text);
        ALL.iter().copied().find(|p| {
            p.display_name().eq_ignore_ascii_case(wanted) || p.id().eq_ignore_ascii_case(text)
        })
    }

    /// Reads a permission by its id only, as a job's matrix writes it.
    pub fn parse_id(id: &str) -> Option<Permission> {
        ALL.iter().copied().find(|p| p.id() == id)
    }

    fn bit(self) -> u64 {
        1 << (self as u32)
    }

    /// The permissions having this one grants too, as Jenkins implies them.
    fn implied(self) -> &'static [Permission] {
        match self {
            OverallAdminister => ALL,
            JobConfigure => &[JobRead, JobExtendedRead],
            ViewConfigure => &[ViewRead],
            AgentConfigure => &[AgentExtendedRead],
            TerminalConfigure => &[TerminalAttach],
            CredentialsCreate
            | CredentialsUpdate
            | CredentialsDelete
            | CredentialsManageDomains => &[CredentialsView],
            _ => &[],
        }
    }
}

/// A set of permissions, with what they imply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PermissionSet(u64);

impl PermissionSet {
    pub const EMPTY: PermissionSet = PermissionSet(0);

    /// Every permission.
    pub fn all() -> PermissionSet {
        PermissionSet::from_iter(ALL.iter().copied())
    }

    /// Adds `permission` and what it implies.
    pub fn insert(&mut self, permission: Permission) {
        self.0 |= permission.bit();
        for implied in permission.implied() {
            self.0 |= implied.bit();
        }
    }

    pub fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    pub fn union(self, other: PermissionSet) -> PermissionSet {
        PermissionSet(self.0 | other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        ALL.iter().copied().filter(move |p| self.contains(*p))
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = PermissionSet::EMPTY;
        for permission in iter {
            set.insert(permission);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ids_and_implications_are_jenkins() {
        assert_eq!(Permission::parse("Job/Build"), Some(JobBuild));
        assert_eq!(Permission::parse("hudson.model.Item.Build"), Some(JobBuild));
        assert_eq!(Permission::parse("Computer/Connect"), Some(AgentConnect));
        assert_eq!(
            Permission::parse("overall/administer"),
            Some(OverallAdminister)
        );
        assert_eq!(Permission::parse("Job/Fly"), None);
        let admin = PermissionSet::from_iter([OverallAdminister]);
        assert!(ALL.iter().all(|p| admin.contains(*p)));
        let configure = PermissionSet::from_iter([JobConfigure]);
        assert!(configure.contains(JobRead) && configure.contains(JobExtendedRead));
        assert!(!configure.contains(JobBuild));
        assert_eq!(Permission::parse("View/Read"), Some(ViewRead));
        assert_eq!(
            Permission::parse("hudson.model.View.Configure"),
            Some(ViewConfigure)
        );
        assert!(PermissionSet::from_iter([ViewConfigure]).contains(ViewRead));
        assert!(ALL.len() <= 64, "a set is one u64");
        for p in ALL {
            assert_eq!(Permission::parse(p.display_name()), Some(*p));
            assert_eq!(Permission::parse(p.id()), Some(*p));
        }
    }
}
