//! Credentials as the credentials plugin's CLI manages them, sealed at rest, bound into
//! builds by `SecretBuildWrapper` and masked in consoles, and used by Git checkouts over
//! HTTP (askpass) and SSH (a key).

use steward_tests::git::{GitHttp, Repo, git_job};
use steward_tests::{Controller, Freestyle};

const NODE: &str = "n1";
const STORE: &str = "system::system::jenkins";

fn setup() -> (Controller, steward_tests::Agent, tempfile::TempDir) {
    let c = Controller::start();
    let (agent, work) = c.node_with_agent(NODE);
    (c, agent, work)
}

fn username_password(id: &str, user: &str, password: &str) -> String {
    format!(
        "<com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>\
           <scope>GLOBAL</scope><id>{id}</id><description>deploy user</description>\
           <username>{user}</username><password>{password}</password>\
         </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>"
    )
}

fn secret_text(id: &str, secret: &str) -> String {
    format!(
        "<org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>\
           <scope>GLOBAL</scope><id>{id}</id><description>api token</description><secret>{secret}</secret>\
         </org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>"
    )
}

fn create(c: &Controller, xml: &str) {
    let out = c.cli_with_stdin(&["create-credentials-by-xml", STORE, "_"], xml);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn the_plugins_commands_manage_credentials_sealed_at_rest() {
    let c = Controller::start();
    create(&c, &username_password("deploy", "ci-bot", "hunter2-pass"));
    create(&c, &secret_text("token", "tok-0123456789"));
    let listed = c.cli(&["list-credentials", STORE]);
    assert_eq!(listed.code, 0, "{listed:?}");
    assert!(
        listed.stdout.contains("Domain           (global)"),
        "{}",
        listed.stdout
    );
    assert!(
        listed
            .stdout
            .contains("deploy           ci-bot/****** (deploy user)"),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("token            api token"),
        "{}",
        listed.stdout
    );
    assert!(!listed.stdout.contains("hunter2"));

    let got = c.cli(&["get-credentials-as-xml", STORE, "_", "deploy"]);
    assert_eq!(got.code, 0, "{got:?}");
    assert!(
        got.stdout.contains("<username>ci-bot</username>"),
        "{}",
        got.stdout
    );
    assert!(
        got.stdout
            .contains("<password>\n    <secret-redacted/>\n  </password>")
            || got.stdout.contains("<secret-redacted/>"),
        "{}",
        got.stdout
    );
    assert!(!got.stdout.contains("hunter2"), "{}", got.stdout);

    // The plugin's failures, with its exit codes.
    let again = c.cli_with_stdin(
        &["create-credentials-by-xml", STORE, "_"],
        &username_password("deploy", "x", "y"),
    );
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("No change"), "{again:?}");
    let missing = c.cli(&["get-credentials-as-xml", STORE, "_", "nope"]);
    assert_eq!(missing.code, 3, "{missing:?}");
    assert!(missing.stderr.contains("No such credential"), "{missing:?}");
    let domain = c.cli(&["get-credentials-as-xml", STORE, "other", "deploy"]);
    assert_eq!(domain.code, 2, "{domain:?}");
    assert!(domain.stderr.contains("No such domain"), "{domain:?}");
    let store = c.cli(&["list-credentials", "system::user::bob"]);
    assert_eq!(store.code, 2, "{store:?}");
    assert!(store.stderr.contains("credentials store"), "{store:?}");
    // Sending back what get printed would store a redacted secret: refused.
    let redacted = c.cli_with_stdin(
        &["update-credentials-by-xml", STORE, "_", "deploy"],
        &got.stdout,
    );
    assert_ne!(redacted.code, 0, "{redacted:?}");
    assert!(redacted.stderr.contains("secret-redacted"), "{redacted:?}");

    let updated = c.cli_with_stdin(
        &["update-credentials-by-xml", STORE, "_", "deploy"],
        &username_password("deploy", "ci-bot-2", "new-pass"),
    );
    assert_eq!(updated.code, 0, "{updated:?}");
    assert!(
        c.cli(&["get-credentials-as-xml", STORE, "_", "deploy"])
            .stdout
            .contains("ci-bot-2")
    );
    assert_eq!(c.cli(&["delete-credentials", STORE, "_", "token"]).code, 0);
    assert_eq!(c.cli(&["delete-credentials", STORE, "_", "token"]).code, 3);

    // Sealed: no secret in the database or anywhere in the home.
    for entry in walk(c.home()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        for secret in [&b"new-pass"[..], b"hunter2-pass", b"tok-0123456789"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "{} holds a secret in the clear",
                entry.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn with_bindings(script: &str, bindings: &str) -> String {
    let job = Freestyle::shell(script).xml();
    job.replace(
        "</project>",
        &format!(
            "<buildWrappers><org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper plugin=\"credentials-binding@681\"><bindings>{bindings}</bindings></org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper></buildWrappers></project>"
        ),
    )
}

#[test]
fn bound_secrets_reach_the_steps_and_are_masked_even_one_byte_at_a_time() {
    let (c, _agent, work) = setup();
    create(&c, &secret_text("token", "tok-0123456789"));
    create(&c, &username_password("deploy", "ci-bot", "hunter2-pass"));
    create(
        &c,
        "<org.jenkinsci.plugins.plaincredentials.impl.FileCredentialsImpl><id>cfg</id><fileName>app.conf</fileName>\
         <secretBytes>a2V5PXZhbHVlCg==</secretBytes></org.jenkinsci.plugins.plaincredentials.impl.FileCredentialsImpl>",
    );
    let bindings = "<org.jenkinsci.plugins.credentialsbinding.impl.StringBinding><credentialsId>token</credentialsId><variable>TOKEN</variable></org.jenkinsci.plugins.credentialsbinding.impl.StringBinding>\
        <org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordMultiBinding><credentialsId>deploy</credentialsId><usernameVariable>DU</usernameVariable><passwordVariable>DP</passwordVariable></org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordMultiBinding>\
        <org.jenkinsci.plugins.credentialsbinding.impl.FileBinding><credentialsId>cfg</credentialsId><variable>CFG</variable></org.jenkinsci.plugins.credentialsbinding.impl.FileBinding>";
    // Printed whole, then a byte at a time with pauses, so each byte is its own write.
    let script = "#!/bin/sh\n\
        echo \"token=$TOKEN pass=$DP\"\n\
        printf 'slow='; for c in $(printf %s \"$TOKEN\" | fold -w1); do printf %s \"$c\"; sleep 0.02; done; echo\n\
        echo \"file=$(cat \"$CFG\") mode=$(stat -c %a \"$CFG\") name=$(basename \"$CFG\")\"\n\
        echo \"$CFG\" > \"$WORKSPACE/cfg-path\"\n\
        [ \"$DU\" = ci-bot ] && [ ${#TOKEN} -eq 14 ] && echo lengths-ok";
    let job = with_bindings(script, bindings);
    let out = c.cli_with_stdin(&["create-job", "secretive"], &job);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("WARNING"), "{out:?}");
    assert_eq!(c.cli(&["build", "secretive", "-s"]).code, 0);
    let console = c.console("secretive", 1);
    assert!(console.contains("token=**** pass=****"), "{console}");
    assert!(console.contains("slow=****\n"), "{console}");
    assert!(
        console.contains("file=key=value mode=600 name=app.conf"),
        "{console}"
    );
    assert!(console.contains("lengths-ok"), "{console}");
    assert!(
        !console.contains("tok-0123456789") && !console.contains("hunter2"),
        "{console}"
    );
    // The stored log is what the console shows; the file went with the build.
    let log = std::fs::read_to_string(c.home().join("jobs/secretive/builds/1/log")).unwrap();
    assert!(!log.contains("tok-0123456789"), "{log}");
    let path = std::fs::read_to_string(work.path().join("workspace/secretive/cfg-path")).unwrap();
    steward_tests::wait_until(steward_tests::DEADLINE, "the bound file is removed", || {
        !std::path::Path::new(path.trim()).exists()
    });
}

#[test]
fn a_binding_to_a_missing_or_mistyped_credential_fails_the_build_with_the_reason() {
    let (c, _agent, _work) = setup();
    create(&c, &secret_text("token", "tok-0123456789"));
    let job = with_bindings(
        "echo never-ran",
        "<org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordMultiBinding><credentialsId>token</credentialsId><usernameVariable>U</usernameVariable><passwordVariable>P</passwordVariable></org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordMultiBinding>",
    );
    assert_eq!(c.cli_with_stdin(&["create-job", "mistyped"], &job).code, 0);
    assert_eq!(c.cli(&["build", "mistyped", "-s"]).code, 2);
    let console = c.console("mistyped", 1);
    assert!(
        console.contains("ERROR: Credentials 'token' is of type 'Secret text' where 'StandardUsernamePasswordCredentials' was expected"),
        "{console}"
    );
    let job = with_bindings(
        "echo never-ran",
        "<org.jenkinsci.plugins.credentialsbinding.impl.StringBinding><credentialsId>gone</credentialsId><variable>T</variable></org.jenkinsci.plugins.credentialsbinding.impl.StringBinding>",
    );
    assert_eq!(c.cli_with_stdin(&["create-job", "missing"], &job).code, 0);
    assert_eq!(c.cli(&["build", "missing", "-s"]).code, 2);
    let console = c.console("missing", 1);
    assert!(
        console.contains("ERROR: Could not find credentials entry with ID 'gone'"),
        "{console}"
    );
}

#[test]
fn a_checkout_over_http_authenticates_through_askpass() {
    let (c, _agent, _work) = setup();
    let repo = Repo::new();
    let head = repo.commit("README", "private\n", "Private", "Ann Lee");
    let server = GitHttp::start(repo.base(), "git-user", "git-pass-42");
    create(&c, &username_password("git", "git-user", "git-pass-42"));
    let job = git_job(
        &server.url("origin.git"),
        "*/main",
        "",
        "echo \"built $GIT_COMMIT\"",
    )
    .replace("</url>", "</url><credentialsId>git</credentialsId>");
    assert_eq!(c.cli_with_stdin(&["create-job", "private"], &job).code, 0);
    assert_eq!(
        c.cli(&["build", "private", "-s"]).code,
        0,
        "{}",
        c.console("private", 1)
    );
    let console = c.console("private", 1);
    assert!(console.contains("using credential git"), "{console}");
    assert!(console.contains(&format!("built {head}")), "{console}");
    assert!(server.authorized.load(std::sync::atomic::Ordering::Relaxed) > 0);
    // A wrong password fails the fetch, and says so.
    let updated = c.cli_with_stdin(
        &["update-credentials-by-xml", STORE, "_", "git"],
        &username_password("git", "git-user", "wrong"),
    );
    assert_eq!(updated.code, 0);
    assert_eq!(c.cli(&["build", "private", "-s"]).code, 2);
    let console = c.console("private", 2);
    assert!(console.contains("ERROR: Command \"git fetch"), "{console}");
    assert!(
        !console.contains("git-pass-42") && !console.contains("wrong\n"),
        "{console}"
    );
}

#[test]
fn a_checkout_over_ssh_uses_the_credentials_key() {
    let (c, _agent, _work) = setup();
    let repo = Repo::new();
    let head = repo.commit("README", "over ssh\n", "Over SSH", "Ann Lee");
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ci", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let sshd = steward_tests::terminals::Sshd::start(&key.with_extension("pub"));
    let private = std::fs::read_to_string(&key).unwrap();
    create(
        &c,
        &format!(
            "<com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey>\
               <scope>GLOBAL</scope><id>deploy-key</id><username>root</username>\
               <privateKeySource class=\"com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey$DirectEntryPrivateKeySource\">\
                 <privateKey>{private}</privateKey>\
               </privateKeySource>\
             </com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey>"
        ),
    );
    let url = format!(
        "ssh://root@127.0.0.1:{}{}",
        sshd.port,
        repo.bare().display()
    );
    let job = git_job(&url, "*/main", "", "echo \"built $GIT_COMMIT\"")
        .replace("</url>", "</url><credentialsId>deploy-key</credentialsId>");
    assert_eq!(c.cli_with_stdin(&["create-job", "viassh"], &job).code, 0);
    assert_eq!(
        c.cli(&["build", "viassh", "-s"]).code,
        0,
        "{}",
        c.console("viassh", 1)
    );
    let console = c.console("viassh", 1);
    assert!(console.contains("using credential deploy-key"), "{console}");
    assert!(console.contains(&format!("built {head}")), "{console}");
    assert!(!console.contains("PRIVATE KEY"), "{console}");
}
