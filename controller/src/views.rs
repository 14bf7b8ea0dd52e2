//! Views: named lists of jobs, as Jenkins' list views, over the store (`store::views`).
//! A list view holds the jobs it names and those whose whole name matches its pattern; the
//! built-in view `all` holds every job, always exists and cannot be deleted (its description
//! can be set). Views are read from the store on each use: nothing to keep in step.
//!
//! Permissions are Jenkins' View/Read, Create, Configure and Delete; as in Jenkins, a view
//! is readable without View/Read by whoever may configure it, or when it lists a job the
//! caller may read ([`readable`]).

use steward_protocol::names::{self, NameError, NameKind};
use steward_protocol::shown::Shown;
use steward_protocol::view_xml::{BUILT_IN, MAX_REGEX_LEN, ViewConfig, ViewKind};
use steward_protocol::xml::{MAX_XML_BYTES, XmlError};

use crate::auth::{Identity, Permission};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::views as rows;

/// Most views a controller keeps: each is listed in the root's `api/json`.
pub const MAX_VIEWS: usize = 1000;
/// The compiled pattern's size limit: a name filter needs little, and a pattern crafted to
/// blow up when compiled is refused instead.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The display name of the group views live in, as Jenkins' messages name it.
const OWNER: &str = "Jenkins";

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("No view named {} inside view {OWNER}", Shown(.0))]
    NotFound(String),
    #[error("View name is empty")]
    Empty,
    #[error("View '{}' already exists", Shown(.0))]
    Exists(String),
    #[error("Invalid view name: {0}")]
    BadName(#[from] NameError),
    #[error("Invalid view XML: {0}")]
    BadXml(#[from] XmlError),
    #[error("Invalid includeRegex {}: {reason}", Shown(.regex))]
    BadRegex { regex: String, reason: String },
    #[error(
        "Expecting view type: {expected} but got: {found} instead.\nShould you needed to change to a new view type, you must first delete and then re-create the view with the new view type."
    )]
    KindChange { expected: String, found: String },
    #[error("{OWNER} does not allow to delete '{}' view", Shown(.0))]
    BuiltIn(String),
    #[error("Already {MAX_VIEWS} views: delete one first")]
    TooMany,
    #[error("View configuration is {0} bytes once written, over the limit of {MAX_XML_BYTES}")]
    TooLarge(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A view, with its pattern compiled.
#[derive(Debug, Clone)]
pub struct View {
    pub config: ViewConfig,
    pattern: Option<regex_automata::meta::Regex>,
}

/// `pattern` compiled to match whole names, as Java's `Matcher.matches()`.
fn compile(pattern: &str) -> Result<regex_automata::meta::Regex, ViewError> {
    let bad = |reason: String| ViewError::BadRegex {
        regex: pattern.chars().take(80).collect(),
        reason,
    };
    if pattern.chars().count() > MAX_REGEX_LEN {
        return Err(bad(format!("longer than {MAX_REGEX_LEN} characters")));
    }
    let build = |text: &str| {
        regex_automata::meta::Regex::builder()
            .configure(
                regex_automata::meta::Config::new()
                    .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
                    .onepass_size_limit(Some(REGEX_SIZE_LIMIT))
                    .hybrid_cache_capacity(REGEX_SIZE_LIMIT),
            )
            .build(text)
            .map_err(|e| bad(e.to_string()))
    };
    // Checked alone first, so a stray `)` cannot close the anchoring group.
    build(pattern)?;
    build(&format!("^(?:{pattern})$"))
}

impl View {
    fn new(config: ViewConfig) -> Result<View, ViewError> {
        let pattern = match (&config.kind, &config.include_regex) {
            (ViewKind::List, Some(regex)) => Some(compile(regex)?),
            _ => None,
        };
        Ok(View { config, pattern })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether job `name` is in the view.
    pub fn contains(&self, name: &str) -> bool {
        match self.config.kind {
            ViewKind::All => true,
            ViewKind::List => {
                let lower = name.to_lowercase();
                self.config
                    .job_names
                    .iter()
                    .any(|n| n == name || n.to_lowercase() == lower)
                    || self.pattern.as_ref().is_some_and(|p| p.is_match(name))
            }
        }
    }

    /// The jobs of `names` (every job, by name) in the view, in that order.
    pub fn jobs<'a>(&self, names: &'a [String]) -> Vec<&'a String> {
        names.iter().filter(|n| self.contains(n)).collect()
    }

    pub fn is_built_in(&self) -> bool {
        self.config.name == BUILT_IN
    }
}

/// The built-in view as configured, or as it comes.
fn built_in(stored: Option<String>) -> Result<View, ViewError> {
    let mut config = match stored {
        Some(xml) => ViewConfig::from_xml(&xml)
            .map_err(|e| StoreError::Corrupt(format!("view '{BUILT_IN}' XML: {e}")))?,
        None => ViewConfig::new(ViewKind::All, BUILT_IN),
    };
    config.name = BUILT_IN.to_owned();
    View::new(config)
}

/// The stored name `name` finds: as written, else in NFC; `All`, the built-in view's
/// shown name, finds it too, as in Jenkins.
fn lookup_key(name: &str) -> String {
    if name == "All" {
        return BUILT_IN.to_owned();
    }
    names::canonical(name).into_owned()
}

/// The view `name` names. An empty name is [`ViewError::Empty`].
pub async fn get(state: &AppState, name: &str) -> Result<View, ViewError> {
    if name.is_empty() {
        return Err(ViewError::Empty);
    }
    let key = lookup_key(name);
    let stored = {
        let key = key.clone();
        state.store.call(move |c| rows::get_xml(c, &key)).await?
    };
    if key == BUILT_IN {
        return built_in(stored);
    }
    let Some(xml) = stored else {
        return Err(ViewError::NotFound(name.to_owned()));
    };
    let mut config = ViewConfig::from_xml(&xml)
        .map_err(|e| StoreError::Corrupt(format!("view '{key}' XML: {e}")))?;
    config.name = key;
    View::new(config)
}

/// Every view, by name, the built-in one among them.
pub async fn list(state: &AppState) -> Result<Vec<View>, ViewError> {
    let stored = state.store.call(|c| rows::rows(c)).await?;
    let mut views = Vec::with_capacity(stored.len() + 1);
    if !stored.iter().any(|(name, _)| name == BUILT_IN) {
        views.push(built_in(None)?);
    }
    for (name, xml) in stored {
        if name == BUILT_IN {
            views.push(built_in(Some(xml))?);
            continue;
        }
        match ViewConfig::from_xml(&xml) {
            Ok(mut config) => {
                config.name = name;
                match View::new(config) {
                    Ok(view) => views.push(view),
                    Err(e) => {
                        tracing::error!(view = ?name_of(&xml), error = ?e.to_string(), "cannot read a stored view")
                    }
                }
            }
            Err(e) => {
                tracing::error!(view = ?name, error = ?e.to_string(), "cannot read a stored view")
            }
        }
    }
    views.sort_by_key(|v| v.name().to_lowercase());
    Ok(views)
}

fn name_of(xml: &str) -> String {
    ViewConfig::from_xml(xml)
        .map(|c| c.name)
        .unwrap_or_default()
}

/// Checks a view before it is stored: its pattern compiles, its XML fits.
fn storable(config: &ViewConfig) -> Result<String, ViewError> {
    View::new(config.clone())?;
    let xml = config.to_xml();
    if xml.len() > MAX_XML_BYTES {
        return Err(ViewError::TooLarge(xml.len()));
    }
    Ok(xml)
}

/// Creates view `config.name` (checked, in NFC): refused when the name is taken (the
/// built-in view's included).
pub async fn create(state: &AppState, mut config: ViewConfig) -> Result<String, ViewError> {
    if config.name.is_empty() {
        return Err(NameError::Empty(NameKind::View).into());
    }
    let name = names::check(NameKind::View, &config.name)?;
    if name == BUILT_IN || name == "All" {
        return Err(ViewError::Exists(name));
    }
    config.name = name.clone();
    let xml = storable(&config)?;
    let key = name.clone();
    let created = state
        .store
        .call(move |c| {
            if rows::rows(c)?.len() >= MAX_VIEWS {
                return Ok(Err(ViewError::TooMany));
            }
            Ok(Ok(rows::insert(c, &key, &xml)?))
        })
        .await??;
    if !created {
        return Err(ViewError::Exists(name));
    }
    tracing::info!(view = ?name, "view created");
    Ok(name)
}

/// Replaces view `name`'s configuration; the name stays (one in the XML is ignored, as
/// Jenkins does) and so does its kind.
pub async fn update(state: &AppState, name: &str, mut config: ViewConfig) -> Result<(), ViewError> {
    let current = get(state, name).await?;
    if current.config.kind != config.kind {
        return Err(ViewError::KindChange {
            expected: format!("class {}", current.config.kind.class()),
            found: format!("class {}", config.kind.class()),
        });
    }
    config.name = current.config.name.clone();
    let xml = storable(&config)?;
    let key = config.name.clone();
    let built_in = current.is_built_in();
    let updated = state
        .store
        .call(move |c| {
            if built_in {
                rows::put(c, &key, &xml)?;
                Ok(true)
            } else {
                rows::update(c, &key, &xml)
            }
        })
        .await?;
    if !updated {
        return Err(ViewError::NotFound(name.to_owned()));
    }
    tracing::info!(view = ?config.name, "view updated");
    Ok(())
}

/// Deletes view `name`; the built-in view is refused with Jenkins' message.
pub async fn delete(state: &AppState, name: &str) -> Result<(), ViewError> {
    let view = get(state, name).await?;
    if view.is_built_in() {
        return Err(ViewError::BuiltIn(view.config.name));
    }
    let key = view.config.name.clone();
    if !state.store.call(move |c| rows::delete(c, &key)).await? {
        return Err(ViewError::NotFound(name.to_owned()));
    }
    tracing::info!(view = ?view.config.name, "view deleted");
    Ok(())
}

/// Whether `identity` may read `view`: View/Read, or (as Jenkins' authorization
/// strategies rule) View/Configure, or Job/Read and a job in the view.
pub fn readable(identity: &Identity, view: &View, job_names: &[String]) -> bool {
    identity.has(Permission::ViewRead)
        || identity.has(Permission::ViewConfigure)
        || (identity.has(Permission::JobRead) && job_names.iter().any(|n| view.contains(n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_view(xml_inside: &str) -> View {
        View::new(
            ViewConfig::from_xml(&format!(
                "<hudson.model.ListView><name>v</name>{xml_inside}</hudson.model.ListView>"
            ))
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn a_list_view_holds_its_named_jobs_and_whole_matches_of_its_pattern() {
        let view = list_view(
            "<jobNames><string>Deploy</string></jobNames><includeRegex>web-.*</includeRegex>",
        );
        assert!(view.contains("deploy"), "names are compared case aside");
        assert!(view.contains("web-frontend"));
        assert!(
            !view.contains("old-web-frontend"),
            "the whole name must match"
        );
        assert!(!view.contains("api"));
        let names: Vec<String> = ["api", "deploy", "web-1"].map(String::from).into();
        assert_eq!(view.jobs(&names), ["deploy", "web-1"]);
    }

    #[test]
    fn bad_patterns_are_refused_with_why() {
        for bad in ["(", "a)|(b", "[z-a]"] {
            let e = View::new(
                ViewConfig::from_xml(&format!(
                    "<hudson.model.ListView><includeRegex>{}</includeRegex></hudson.model.ListView>",
                    bad.replace('<', "&lt;")
                ))
                .unwrap(),
            )
            .unwrap_err();
            assert!(
                e.to_string().starts_with("Invalid includeRegex"),
                "{bad}: {e}"
            );
        }
        // Counted repetitions that would compile into a huge automaton.
        assert!(compile("(a{1000}){1000}").is_err());
    }

    #[tokio::test]
    async fn views_are_created_updated_and_deleted_and_all_always_exists() {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::for_tests(dir.path());
        let names = |views: Vec<View>| {
            views
                .iter()
                .map(|v| v.name().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(list(&state).await.unwrap()), ["all"]);
        let web = ViewConfig::from_xml(
            "<hudson.model.ListView><name>Web</name><jobNames><string>a</string></jobNames></hudson.model.ListView>",
        )
        .unwrap();
        assert_eq!(create(&state, web.clone()).await.unwrap(), "Web");
        assert!(matches!(
            create(&state, web.clone()).await,
            Err(ViewError::Exists(_))
        ));
        let mut all = web.clone();
        all.name = "all".into();
        assert!(matches!(
            create(&state, all).await,
            Err(ViewError::Exists(_))
        ));
        assert_eq!(names(list(&state).await.unwrap()), ["all", "Web"]);
        // A new kind is refused; the name in the XML is not taken.
        let renamed = ViewConfig::from_xml(
            "<hudson.model.ListView><name>Other</name><description>d</description></hudson.model.ListView>",
        )
        .unwrap();
        update(&state, "Web", renamed).await.unwrap();
        let got = get(&state, "Web").await.unwrap();
        assert_eq!(got.config.description.as_deref(), Some("d"));
        let kind = ViewConfig::new(ViewKind::All, "Web");
        assert_eq!(
            update(&state, "Web", kind)
                .await
                .unwrap_err()
                .to_string()
                .lines()
                .next(),
            Some(
                "Expecting view type: class hudson.model.ListView but got: class hudson.model.AllView instead."
            )
        );
        // The built-in view: described, not deleted; found as `All` too.
        let mut described = ViewConfig::new(ViewKind::All, "all");
        described.description = Some("Everything".into());
        update(&state, "All", described).await.unwrap();
        assert_eq!(
            get(&state, "all")
                .await
                .unwrap()
                .config
                .description
                .as_deref(),
            Some("Everything")
        );
        assert_eq!(
            delete(&state, "all").await.unwrap_err().to_string(),
            "Jenkins does not allow to delete 'all' view"
        );
        delete(&state, "Web").await.unwrap();
        assert_eq!(
            get(&state, "Web").await.unwrap_err().to_string(),
            "No view named Web inside view Jenkins"
        );
        assert!(matches!(get(&state, "").await, Err(ViewError::Empty)));
    }
}
