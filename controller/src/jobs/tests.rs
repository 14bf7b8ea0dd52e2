use std::time::Duration;

use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::*;

fn admin() -> Actor {
    Actor::new("admin", None)
}
use crate::auth::authenticate;
use crate::store::users;

/// How long a step that must not wait for the store may take before the test fails: a
/// deadline for a loaded machine, not a measure of speed.
const DEADLINE: Duration = Duration::from_secs(30);

fn shell_job(command: &str) -> JobConfig {
    JobConfig::from_xml(&format!(
        "<project><builders><hudson.tasks.Shell><command>{command}</command>\
         </hudson.tasks.Shell></builders></project>"
    ))
    .unwrap()
}

/// Holds the store's connection (as a slow store call would) until the returned sender
/// is dropped or sent to.
async fn hold_store(
    state: &AppState,
) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (held, is_held) = tokio::sync::oneshot::channel();
    let store = state.store.clone();
    let holder = tokio::spawn(async move {
        store
            .call(move |_| {
                let _ = held.send(());
                let _ = released.recv();
                Ok(())
            })
            .await
            .unwrap();
    });
    is_held.await.unwrap();
    (release, holder)
}

#[tokio::test]
async fn reading_jobs_and_authenticating_never_wait_for_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::for_tests(dir.path());
    let token = state
        .store
        .call(|c| users::ensure_admin(c, |_| Ok(())))
        .await
        .unwrap()
        .unwrap();
    create(&state, "j", shell_job("make"), &admin())
        .await
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());

    let (release, holder) = hold_store(&state).await;
    // While another request holds the store: jobs are read from memory, a document is
    // parsed and written for storing, and callers are told who they are.
    let work = async {
        let job = get(&state, "j").await.unwrap();
        assert_eq!(job.name, "j");
        assert!(job.xml.contains("<command>make</command>"));
        assert_eq!(list(&state).await.unwrap().len(), 1);
        assert_eq!(names(&state).await.unwrap(), ["j"]);
        let config = parse_config(job.xml.clone()).await.unwrap().unwrap();
        storable("k".into(), config).await.unwrap();
        authenticate(&state.store, &headers).await.unwrap()
    };
    let identity = tokio::time::timeout(DEADLINE, work)
        .await
        .expect("a read or authentication waited for the store's connection");
    assert_eq!(identity.name(), "admin");
    release.send(()).unwrap();
    holder.await.unwrap();
}

#[tokio::test]
async fn a_job_is_parsed_when_written_not_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::for_tests(dir.path());
    create(&state, "j", shell_job("one"), &admin())
        .await
        .unwrap();
    // The row changed behind the service's back: readers still see what was written through
    // it, since they never read (or parse) the row again.
    state
        .store
        .call(|c| jobs::update(c, "j", &shell_job("two").to_xml()))
        .await
        .unwrap();
    assert!(get(&state, "j").await.unwrap().xml.contains("one"));
    // What start-up reads is the row.
    load(&state).await.unwrap();
    assert!(get(&state, "j").await.unwrap().xml.contains("two"));
}

#[tokio::test]
async fn writes_keep_memory_and_store_together() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::for_tests(dir.path());
    create(&state, "a", shell_job("one"), &admin())
        .await
        .unwrap();
    update(&state, "a", shell_job("two"), &admin())
        .await
        .unwrap();
    set_disabled(&state, "a", true, &admin()).await.unwrap();
    copy(&state, "a", "b", &admin()).await.unwrap();
    delete(&state, "a", &admin()).await.unwrap();
    let in_memory: Vec<(String, String)> = list(&state)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.name.clone(), r.xml.clone()))
        .collect();
    let stored = state.store.call(|c| jobs::rows(c)).await.unwrap();
    assert_eq!(in_memory, stored);
    assert_eq!(stored.len(), 1);
    let b = get(&state, "b").await.unwrap();
    assert!(b.config.disabled && b.xml.contains("two"));
}

#[tokio::test]
async fn names_are_kept_in_nfc_and_look_alikes_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::for_tests(dir.path());
    let nfd = "cafe\u{301}";
    create(&state, nfd, JobConfig::new(), &admin())
        .await
        .unwrap();
    assert_eq!(names(&state).await.unwrap(), ["caf\u{e9}"]);
    // Found under either spelling, and taken under either.
    assert_eq!(get(&state, nfd).await.unwrap().name, "caf\u{e9}");
    assert!(matches!(
        create(&state, "caf\u{e9}", JobConfig::new(), &admin()).await,
        Err(JobError::Exists(name)) if name == "caf\u{e9}"
    ));
    assert!(matches!(
        check_new_name(&state, nfd).await,
        Err(JobError::Exists(_))
    ));

    create(&state, "J1", JobConfig::new(), &admin())
        .await
        .unwrap();
    let refused = create(&state, "j1", JobConfig::new(), &admin())
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "A job named ‘J1’ already exists (‘j1’ differs from it only by case or compatibility form)"
    );
    assert!(matches!(
        check_new_name(&state, "\u{FF2A}1").await,
        Err(JobError::LooksLike { existing, .. }) if existing == "J1"
    ));
    assert!(matches!(
        copy(&state, "J1", "j1", &admin()).await,
        Err(JobError::LooksLike { .. })
    ));
    for bad in ["a\u{200B}b", "\u{202E}abc", "a\u{FF0F}b"] {
        assert!(
            matches!(check_new_name(&state, bad).await, Err(JobError::BadName(_))),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn a_job_that_cannot_be_read_can_still_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::for_tests(dir.path());
    state
        .store
        .call(|c| jobs::insert(c, "bad", "<project><disabled>maybe</disabled></project>"))
        .await
        .unwrap();
    load(&state).await.unwrap();
    assert!(matches!(
        get(&state, "bad").await,
        Err(JobError::Store(StoreError::Corrupt(_)))
    ));
    assert_eq!(names(&state).await.unwrap(), ["bad"]);
    // The jobs that can be read are still listed.
    create(
        &state,
        "good",
        JobConfig::from_xml("<project/>").unwrap(),
        &admin(),
    )
    .await
    .unwrap();
    let listed: Vec<String> = list(&state)
        .await
        .unwrap()
        .iter()
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(listed, ["good"]);
    delete(&state, "bad", &admin()).await.unwrap();
    assert_eq!(names(&state).await.unwrap(), ["good"]);
}
