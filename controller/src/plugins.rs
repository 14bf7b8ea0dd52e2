//! The Jenkins plugins whose features Steward carries, as `list-plugins` and
//! `/pluginManager/api/json` show them: each under the plugin's short name, with its display
//! name and the plugin release whose behaviour Steward follows, so that a script asking
//! "is the Git plugin there?" (python-jenkins' `get_plugins()`) gets the answer that is
//! true of this controller. docs/jobs.md says what each covers and what it does not.

/// A plugin feature Steward implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plugin {
    /// Jenkins' short name (`git`).
    pub short_name: &'static str,
    /// Its display name (`Git plugin`).
    pub long_name: &'static str,
    /// The release Steward follows.
    pub version: &'static str,
    /// Its page.
    pub url: &'static str,
    /// The plugins it needs, by short name (all of them here too).
    pub dependencies: &'static [&'static str],
}

/// Every plugin feature Steward implements, by short name.
pub const PLUGINS: &[Plugin] = &[
    Plugin {
        short_name: "build-timeout",
        long_name: "Build Timeout",
        version: "1.33",
        url: "https://plugins.jenkins.io/build-timeout/",
        dependencies: &[],
    },
    Plugin {
        short_name: "credentials",
        long_name: "Credentials Plugin",
        version: "1311.vcf0a_900b_37c2",
        url: "https://plugins.jenkins.io/credentials/",
        dependencies: &[],
    },
    Plugin {
        short_name: "credentials-binding",
        long_name: "Credentials Binding Plugin",
        version: "681.vf91669a_32e45",
        url: "https://plugins.jenkins.io/credentials-binding/",
        dependencies: &["credentials", "plain-credentials", "ssh-credentials"],
    },
    Plugin {
        short_name: "git",
        long_name: "Git plugin",
        version: "5.2.1",
        url: "https://plugins.jenkins.io/git/",
        dependencies: &["credentials", "ssh-credentials"],
    },
    Plugin {
        short_name: "github",
        long_name: "GitHub plugin",
        version: "1.40.0",
        url: "https://plugins.jenkins.io/github/",
        dependencies: &["git"],
    },
    Plugin {
        short_name: "junit",
        long_name: "JUnit Plugin",
        version: "1265.v65b_14fa_f12f0",
        url: "https://plugins.jenkins.io/junit/",
        dependencies: &[],
    },
    Plugin {
        short_name: "matrix-auth",
        long_name: "Matrix Authorization Strategy Plugin",
        version: "3.2.2",
        url: "https://plugins.jenkins.io/matrix-auth/",
        dependencies: &[],
    },
    Plugin {
        short_name: "plain-credentials",
        long_name: "Plain Credentials Plugin",
        version: "143.v1b_df8b_d3b_e48",
        url: "https://plugins.jenkins.io/plain-credentials/",
        dependencies: &["credentials"],
    },
    Plugin {
        short_name: "ssh-credentials",
        long_name: "SSH Credentials Plugin",
        version: "308.ve4497b_ccd8f4",
        url: "https://plugins.jenkins.io/ssh-credentials/",
        dependencies: &["credentials"],
    },
    Plugin {
        short_name: "timestamper",
        long_name: "Timestamper",
        version: "1.26",
        url: "https://plugins.jenkins.io/timestamper/",
        dependencies: &[],
    },
    Plugin {
        short_name: "ws-cleanup",
        long_name: "Workspace Cleanup Plugin",
        version: "0.45",
        url: "https://plugins.jenkins.io/ws-cleanup/",
        dependencies: &[],
    },
];

/// The plugin `name` names: its short name, as Jenkins' plugin manager looks one up.
pub fn find(name: &str) -> Option<&'static Plugin> {
    PLUGINS.iter().find(|p| p.short_name == name)
}

/// `list-plugins`' lines for `plugins`: short name, display name and version, the first two
/// padded to the longest of each, as Jenkins' `%-Ns %-Ms %s`.
pub fn table(plugins: &[&Plugin]) -> String {
    // Jenkins pads to `String.length()`: UTF-16 units. Every name here is ASCII.
    let short = plugins
        .iter()
        .map(|p| p.short_name.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let long = plugins
        .iter()
        .map(|p| p.long_name.len())
        .max()
        .unwrap_or(1)
        .max(1);
    plugins
        .iter()
        .map(|p| {
            format!(
                "{:<short$} {:<long$} {}\n",
                p.short_name, p.long_name, p.version
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_unique_and_dependencies_are_listed_too() {
        let names: Vec<&str> = PLUGINS.iter().map(|p| p.short_name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for plugin in PLUGINS {
            for dependency in plugin.dependencies {
                assert!(find(dependency).is_some(), "{dependency}");
            }
        }
    }

    #[test]
    fn the_table_pads_as_jenkins_does() {
        let git = find("git").unwrap();
        assert_eq!(table(&[git]), "git Git plugin 5.2.1\n");
        let junit = find("junit").unwrap();
        assert_eq!(
            table(&[git, junit]),
            "git   Git plugin   5.2.1\njunit JUnit Plugin 1265.v65b_14fa_f12f0\n"
        );
    }
}
