//! Ant file patterns, as Jenkins' artifact archiver (`archiveArtifacts`) and JUnit
//! publisher (`junit`) take them: `**/target/*.jar, dist/`, relative to the workspace.
//!
//! Jenkins builds an Ant `FileSet` from the job's strings (`Util.createFileSet`):
//!
//! - Patterns are separated by commas only, and each is trimmed: `a.txt, b.txt` is two
//!   patterns, `my file.txt` is one (with its space). Empty ones are skipped.
//! - A path matches when it matches an include and no exclude. `*` matches any characters
//!   of one path segment, `?` one character, and a `**` segment any number of segments
//!   (none included); `\` is a separator like `/`, and a pattern ending in a separator
//!   gets `**` appended (`dist/` is `dist/**`). Dot files are not special.
//! - Matching is case-sensitive unless asked otherwise (`caseSensitive`, artifacts only).
//! - Ant's default excludes ([`DEFAULT_EXCLUDES`]: version-control metadata, editor
//!   backups) are added to the excludes unless turned off (`defaultExcludes`).
//! - Excluding a directory does not exclude what is in it: `**/.git` excludes the
//!   directory entry, `**/.git/**` its contents (the default excludes have both).
//!
//! Unlike Ant, absolute patterns and `..` segments are refused with a reason, not left to
//! match nothing: a pattern names files in the workspace and nowhere else.
//!
//! A directory walk asks [`GlobSet::could_match_below`] before descending, as Ant's
//! scanner does (`couldHoldIncluded`, `contentsExcluded`), so that `target/*.jar` never
//! walks `node_modules/`.

/// Ant's default excludes (`DirectoryScanner.DEFAULTEXCLUDES`, Ant 1.10), in its order.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    // Miscellaneous typical temporary files
    "**/*~",
    "**/#*#",
    "**/.#*",
    "**/%*%",
    "**/._*",
    // CVS
    "**/CVS",
    "**/CVS/**",
    "**/.cvsignore",
    // SCCS
    "**/SCCS",
    "**/SCCS/**",
    // Visual SourceSafe
    "**/vssver.scc",
    // Subversion
    "**/.svn",
    "**/.svn/**",
    // Git
    "**/.git",
    "**/.git/**",
    "**/.gitattributes",
    "**/.gitignore",
    "**/.gitmodules",
    // Mercurial
    "**/.hg",
    "**/.hg/**",
    "**/.hgignore",
    "**/.hgsub",
    "**/.hgsubstate",
    "**/.hgtags",
    // Bazaar
    "**/.bzr",
    "**/.bzr/**",
    "**/.bzrignore",
    // Mac
    "**/.DS_Store",
];

/// Most patterns in one includes or excludes string: jobs list a handful; this bounds the
/// work done for each path of a walk.
pub const MAX_PATTERNS: usize = 256;
/// Longest pattern, in bytes: Linux's `PATH_MAX`.
pub const MAX_PATTERN_BYTES: usize = 4096;

/// Why a pattern string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("no file pattern given (for example **/*.xml)")]
    NoIncludes,
    #[error("pattern \"{0}\" is absolute: patterns are relative to the workspace")]
    Absolute(String),
    #[error("pattern \"{0}\" has a \"..\" segment: patterns cannot leave the workspace")]
    Parent(String),
    #[error("more than {MAX_PATTERNS} patterns")]
    TooMany,
    #[error("a pattern of {0} bytes is longer than {MAX_PATTERN_BYTES} bytes")]
    TooLong(usize),
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// `**`: any number of path segments.
    Deep,
    /// A name, with `*` and `?` wildcards.
    Name(Vec<char>),
}

/// One pattern, split into segments.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    segments: Vec<Segment>,
}

/// Include and exclude patterns, ready to match workspace paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobSet {
    includes: Vec<Pattern>,
    excludes: Vec<Pattern>,
    case_sensitive: bool,
}

impl GlobSet {
    /// Parses comma-separated `includes` and `excludes` (which may be empty). At least one
    /// include is needed.
    pub fn new(
        includes: &str,
        excludes: &str,
        case_sensitive: bool,
        default_excludes: bool,
    ) -> Result<GlobSet, GlobError> {
        let includes = parse_list(includes)?;
        if includes.is_empty() {
            return Err(GlobError::NoIncludes);
        }
        let mut excludes = parse_list(excludes)?;
        if default_excludes {
            for pattern in DEFAULT_EXCLUDES {
                excludes.push(parse_pattern(pattern)?);
            }
        }
        Ok(GlobSet {
            includes,
            excludes,
            case_sensitive,
        })
    }

    /// Whether the file at `path` (relative to the workspace, `/`-separated) is selected:
    /// it matches an include and no exclude.
    pub fn matches(&self, path: &str) -> bool {
        let Some(segments) = relative_segments(path) else {
            return false;
        };
        let matched = |p: &Pattern| self.reach(p, &segments).last() == Some(&true);
        self.includes.iter().any(matched) && !self.excludes.iter().any(matched)
    }

    /// Whether a file somewhere below the directory `dir` could be selected: an include
    /// could match a path below it, and the excludes do not exclude all of it. A walk can
    /// skip `dir` when this is false. (`""` is the workspace itself.)
    pub fn could_match_below(&self, dir: &str) -> bool {
        let Some(segments) = relative_segments(dir) else {
            return false;
        };
        let reachable = self.includes.iter().any(|p| {
            let reach = self.reach(p, &segments);
            // Some position short of the pattern's end: more segments can match there.
            reach[..p.segments.len()].iter().any(|&r| r)
        });
        reachable && !self.excluded_below(&segments)
    }

    /// Whether everything below the directory `dir` is excluded (as `**/.git/**` does for
    /// `.git`), so that a walk need not descend into it.
    pub fn excluded_dir(&self, dir: &str) -> bool {
        match relative_segments(dir) {
            Some(segments) => self.excluded_below(&segments),
            None => false,
        }
    }

    fn excluded_below(&self, dir: &[&str]) -> bool {
        self.excludes.iter().any(|p| {
            let reach = self.reach(p, dir);
            // Reached a position from which only `**` remain: any path below matches.
            (0..p.segments.len())
                .any(|j| reach[j] && p.segments[j..].iter().all(|s| *s == Segment::Deep))
        })
    }

    /// The positions of `pattern` that `path` can reach: `reach[j]` when the path's
    /// segments can be matched by the pattern's first `j` segments. `reach[len]` is a full
    /// match. (A set of positions rather than backtracking: no pattern makes it slow.)
    fn reach(&self, pattern: &Pattern, path: &[&str]) -> Vec<bool> {
        let segs = &pattern.segments;
        let mut reach = vec![false; segs.len() + 1];
        reach[0] = true;
        close(segs, &mut reach);
        let mut next = vec![false; segs.len() + 1];
        for name in path {
            next.iter_mut().for_each(|r| *r = false);
            let mut any = false;
            for (j, seg) in segs.iter().enumerate() {
                if !reach[j] {
                    continue;
                }
                match seg {
                    Segment::Deep => {
                        next[j] = true;
                        any = true;
                    }
                    Segment::Name(glob) => {
                        if name_matches(glob, name, self.case_sensitive) {
                            next[j + 1] = true;
                            any = true;
                        }
                    }
                }
            }
            std::mem::swap(&mut reach, &mut next);
            if !any {
                break;
            }
            close(segs, &mut reach);
        }
        reach
    }
}

/// A `**` can match no segment: whatever reaches it reaches past it.
fn close(segs: &[Segment], reach: &mut [bool]) {
    for j in 0..segs.len() {
        if reach[j] && segs[j] == Segment::Deep {
            reach[j + 1] = true;
        }
    }
}

/// The segments of a relative path; `None` for an absolute one (no pattern matches it).
fn relative_segments(path: &str) -> Option<Vec<&str>> {
    if path.starts_with('/') {
        return None;
    }
    Some(path.split('/').filter(|s| !s.is_empty()).collect())
}

/// Splits a pattern string as Jenkins' `Util.createFileSet` does: on commas, each trimmed
/// as Java's `String.trim` does (any character up to U+0020), empty ones skipped.
fn parse_list(list: &str) -> Result<Vec<Pattern>, GlobError> {
    let mut patterns = Vec::new();
    for token in list.split(',') {
        let token = token.trim_matches(|c: char| c <= ' ');
        if token.is_empty() {
            continue;
        }
        if patterns.len() == MAX_PATTERNS {
            return Err(GlobError::TooMany);
        }
        patterns.push(parse_pattern(token)?);
    }
    Ok(patterns)
}

fn parse_pattern(text: &str) -> Result<Pattern, GlobError> {
    if text.len() > MAX_PATTERN_BYTES {
        return Err(GlobError::TooLong(text.len()));
    }
    let normalized = text.replace('\\', "/");
    let bytes = normalized.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if normalized.starts_with('/') || drive {
        return Err(GlobError::Absolute(text.to_owned()));
    }
    let mut segments = Vec::new();
    for segment in normalized.split('/').filter(|s| !s.is_empty()) {
        segments.push(match segment {
            ".." => return Err(GlobError::Parent(text.to_owned())),
            "**" => Segment::Deep,
            name => Segment::Name(name.chars().collect()),
        });
    }
    // Ant: a pattern ending in a separator means everything below.
    if normalized.ends_with('/') {
        segments.push(Segment::Deep);
    }
    Ok(Pattern { segments })
}

/// Whether `name` matches the one-segment `glob` (`*` any characters, `?` one).
fn name_matches(glob: &[char], name: &str, case_sensitive: bool) -> bool {
    let name: Vec<char> = name.chars().collect();
    let same = |p: char, c: char| {
        p == c
            || (!case_sensitive
                && (p.to_uppercase().eq(c.to_uppercase()) || p.to_lowercase().eq(c.to_lowercase())))
    };
    // Greedy with one backtrack point, the last `*`: linear in practice, never worse
    // than quadratic.
    let (mut g, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match glob.get(g) {
            Some('*') => {
                star = Some((g, n));
                g += 1;
            }
            Some(&p) if p == '?' || same(p, name[n]) => {
                g += 1;
                n += 1;
            }
            _ => match star {
                Some((sg, sn)) => {
                    g = sg + 1;
                    n = sn + 1;
                    star = Some((sg, sn + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&p| p == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(includes: &str, excludes: &str) -> GlobSet {
        GlobSet::new(includes, excludes, true, true).unwrap()
    }

    #[test]
    fn ants_documented_examples() {
        // Ant manual, "Directory-based Tasks".
        let s = set("**/CVS/*", "");
        for yes in [
            "CVS/Repository",
            "org/apache/CVS/Entries",
            "org/apache/jakarta/tools/ant/CVS/Entries",
        ] {
            // Default excludes would hide CVS; without them the pattern decides.
            assert!(
                GlobSet::new("**/CVS/*", "", true, false)
                    .unwrap()
                    .matches(yes),
                "{yes}"
            );
        }
        assert!(
            !s.matches("org/apache/CVS/Entries"),
            "default excludes hide CVS/"
        );
        let s = GlobSet::new("org/apache/jakarta/**", "", true, false).unwrap();
        assert!(s.matches("org/apache/jakarta/tools/ant/docs/index.html"));
        assert!(s.matches("org/apache/jakarta/test.xml"));
        assert!(!s.matches("org/apache/xyz.java"));
        let s = GlobSet::new("org/apache/**/CVS/*", "", true, false).unwrap();
        assert!(s.matches("org/apache/CVS/Entries"));
        assert!(s.matches("org/apache/jakarta/tools/ant/CVS/Entries"));
        assert!(!s.matches("org/apache/CVS/foo/bar/Entries"));
        let s = set("**/test/**", "");
        assert!(s.matches("test/x") && s.matches("a/test/b/c") && !s.matches("a/testing/x"));
        // `?` is one character, `*` stays in its segment.
        let s = set("test/a??.java", "");
        assert!(s.matches("test/abc.java") && !s.matches("test/ab.java"));
        assert!(!set("*.java", "").matches("src/A.java"));
        assert!(
            set("**/*.java", "").matches("A.java"),
            "** matches no segment"
        );
        // A trailing separator means `/**` (which matches `dist` itself: `**` may be no
        // segment), and `\` is a separator.
        let s = set("dist/", "");
        assert!(s.matches("dist/a/b.jar") && s.matches("dist") && !s.matches("distx"));
        assert!(set("target\\*.jar", "").matches("target/app.jar"));
    }

    #[test]
    fn jenkins_splits_on_commas_and_trims() {
        let s = set(" target/*.jar ,, build/my report.html,", "");
        assert!(s.matches("target/a.jar"));
        assert!(
            s.matches("build/my report.html"),
            "spaces inside a pattern are kept"
        );
        assert!(!s.matches("build/my"));
        assert_eq!(
            GlobSet::new(" , ", "", true, true),
            Err(GlobError::NoIncludes)
        );
    }

    #[test]
    fn excludes_win_over_includes() {
        let s = set("**/*.xml", "**/ignored/**, **/*-old.xml");
        assert!(s.matches("reports/TEST-a.xml"));
        assert!(!s.matches("reports/ignored/TEST-a.xml"));
        assert!(!s.matches("reports/TEST-a-old.xml"));
    }

    #[test]
    fn case_sensitivity() {
        let strict = GlobSet::new("**/*.JAR", "", true, true).unwrap();
        assert!(!strict.matches("lib/a.jar"));
        let loose = GlobSet::new("**/*.JAR", "**/SKIP/**", false, true).unwrap();
        assert!(loose.matches("lib/a.jar") && loose.matches("LIB/B.Jar"));
        assert!(!loose.matches("skip/a.jar"));
        // Default excludes ignore case too.
        assert!(
            !GlobSet::new("**", "", false, true)
                .unwrap()
                .matches("x/.GIT/config")
        );
    }

    #[test]
    fn default_excludes_are_ants() {
        let s = set("**", "");
        for hidden in [
            ".git/config",
            "sub/.git/HEAD",
            ".gitignore",
            "a/.svn/entries",
            "notes.txt~",
            "#draft#",
            ".#lock",
            "%tmp%",
            "._resource",
            "CVS/Root",
            "a/.DS_Store",
            "vssver.scc",
            ".hgtags",
            ".bzr/x",
        ] {
            assert!(!s.matches(hidden), "{hidden}");
        }
        for shown in [
            ".github/workflows/ci.yml",
            "src/.env",
            "a/.gitkeep",
            "git/x",
        ] {
            assert!(s.matches(shown), "{shown}");
        }
        let all = GlobSet::new("**", "", true, false).unwrap();
        assert!(all.matches(".git/config") && all.matches("a/.DS_Store"));
        assert_eq!(DEFAULT_EXCLUDES.len(), 28);
    }

    #[test]
    fn directory_pruning() {
        let s = set("target/*.jar, **/surefire-reports/*.xml", "build/**");
        assert!(s.could_match_below(""));
        assert!(s.could_match_below("target"));
        assert!(
            s.could_match_below("module/target"),
            "via **/surefire-reports"
        );
        let only_target = set("target/*.jar", "");
        assert!(only_target.could_match_below("target"));
        assert!(!only_target.could_match_below("src"));
        assert!(
            !only_target.could_match_below("target/classes"),
            "*.jar is one level"
        );
        assert!(!only_target.could_match_below("node_modules"));
        // Fully excluded directories.
        assert!(s.excluded_dir("build") && s.excluded_dir("build/x"));
        assert!(!s.could_match_below("build"));
        assert!(s.excluded_dir(".git") && s.excluded_dir("sub/.svn"));
        assert!(!s.excluded_dir("src") && !s.excluded_dir("buildx"));
        // `**/CVS` alone excludes the entry, not its contents.
        let entry_only = GlobSet::new("**", "**/tmp", true, false).unwrap();
        assert!(!entry_only.excluded_dir("tmp") && entry_only.matches("tmp/x"));
        assert!(!entry_only.matches("a/tmp"));
    }

    #[test]
    fn absolute_and_parent_patterns_are_refused() {
        for bad in ["/etc/passwd", "\\\\server\\share", "C:\\x\\*.jar", "c:/x"] {
            assert!(matches!(set_err(bad), GlobError::Absolute(_)), "{bad}");
        }
        for bad in ["../x", "a/../../b", "a\\..\\b"] {
            assert!(matches!(set_err(bad), GlobError::Parent(_)), "{bad}");
        }
        assert!(matches!(
            GlobSet::new("*.jar", "../x", true, true),
            Err(GlobError::Parent(_))
        ));
        assert_eq!(
            set_err("/etc/*").to_string(),
            "pattern \"/etc/*\" is absolute: patterns are relative to the workspace"
        );
        assert_eq!(GlobSet::new("", "", true, true), Err(GlobError::NoIncludes));
        let many = vec!["a"; MAX_PATTERNS + 1].join(",");
        assert_eq!(GlobSet::new(&many, "", true, true), Err(GlobError::TooMany));
        let long = "a".repeat(MAX_PATTERN_BYTES + 1);
        assert_eq!(
            GlobSet::new(&long, "", true, true),
            Err(GlobError::TooLong(long.len()))
        );
        // Absolute paths never match.
        assert!(!set("**", "").matches("/etc/passwd"));
    }

    fn set_err(includes: &str) -> GlobError {
        GlobSet::new(includes, "", true, true).unwrap_err()
    }

    #[test]
    fn wildcards_within_a_segment() {
        assert!(name_matches(&"*".chars().collect::<Vec<_>>(), "", true));
        assert!(name_matches(
            &"a*b*c".chars().collect::<Vec<_>>(),
            "aXbYbZc",
            true
        ));
        assert!(!name_matches(
            &"a*b*c".chars().collect::<Vec<_>>(),
            "aXbYbZ",
            true
        ));
        assert!(name_matches(
            &"**x".chars().collect::<Vec<_>>(),
            "yyx",
            true
        ));
        assert!(name_matches(
            &"?é?".chars().collect::<Vec<_>>(),
            "aéb",
            true
        ));
        assert!(name_matches(
            &"STRASSE".chars().collect::<Vec<_>>(),
            "strasse",
            false
        ));
        // A pathological name is still quick.
        let glob: Vec<char> = "*a*a*a*a*a*b".chars().collect();
        assert!(!name_matches(&glob, &"a".repeat(5000), true));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(inc in "[a-z*?/\\\\., ]{0,40}", exc in "[a-z*?/.,]{0,20}", path in "[a-z*?/.]{0,30}", ci: bool, de: bool) {
            if let Ok(s) = GlobSet::new(&inc, &exc, ci, de) {
                let _ = s.matches(&path);
                let _ = s.could_match_below(&path);
                let _ = s.excluded_dir(&path);
            }
        }

        #[test]
        fn pruning_never_hides_a_match(inc in "[ab*/]{1,12}", exc in "[ab*/]{0,8}", path in "[ab]{1,2}(/[ab]{1,2}){0,4}") {
            if let Ok(s) = GlobSet::new(&inc, &exc, true, false)
                && s.matches(&path)
            {
                let segments: Vec<&str> = path.split('/').collect();
                for depth in 0..segments.len() {
                    let dir = segments[..depth].join("/");
                    proptest::prop_assert!(s.could_match_below(&dir), "{} under {:?}", path, dir);
                    proptest::prop_assert!(!s.excluded_dir(&dir), "{} under {:?}", path, dir);
                }
            }
        }
    }
}
