//! No secret enters the audit log: actions carrying secrets are run through the CLI
//! commands as a client would run them (a password, a token, credentials, a password
//! parameter, a terminal's secret parameter), then every stored entry is searched for
//! them.

use bytes::Bytes;
use steward_protocol::node_xml::NodeConfig;
use steward_protocol::plaincli::Frame;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{AuditLog, Retention};
use crate::auth::{Identity, PermissionSet};
use crate::cli::commands::{Invocation, dispatch};
use crate::cli::io::{Output, Stdin};
use crate::state::AppState;
use crate::store::audit::{Filter, page};
use crate::store::users::UserRecord;

const PASSWORD: &str = "pw-correct-horse-7";
const CREDENTIAL_PASSWORD: &str = "cred-hunter2-pass";
const CREDENTIAL_PASSWORD_NEW: &str = "cred-hunter3-pass";
const SECRET_TEXT: &str = "tok-0123456789abcdef";
const PARAMETER_VALUE: &str = "param-s3cret-value";
const PARAMETER_DEFAULT: &str = "param-default-value";
const TERMINAL_PASSWORD: &str = "term-pass-value";

fn admin() -> Identity {
    Identity::User(UserRecord {
        name: "admin".into(),
        full_name: "admin".into(),
        permissions: PermissionSet::all(),
    })
}

/// Runs a command line as `admin` from 192.0.2.7 with `stdin`; its exit code and stdout.
async fn cli(state: &AppState, args: &[&str], stdin: &str) -> (i32, String) {
    let (out_tx, mut out_rx) = mpsc::channel(16);
    let collect = tokio::spawn(async move {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        while let Some(frame) = out_rx.recv().await {
            match frame {
                Frame::Stdout(b) => stdout.extend_from_slice(&b),
                Frame::Stderr(b) => stderr.extend_from_slice(&b),
                _ => {}
            }
        }
        (stdout, stderr)
    });
    let (in_tx, in_rx) = mpsc::channel(4);
    if !stdin.is_empty() {
        in_tx
            .send(Bytes::from(stdin.to_owned()))
            .await
            .expect("stdin");
    }
    drop(in_tx);
    let code = dispatch(Invocation {
        state: state.clone(),
        auth: Ok(admin()),
        remote: Some("192.0.2.7".parse().expect("an address")),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        stdin: Stdin::new(in_rx),
        out: Output::new(out_tx),
        cancel: CancellationToken::new(),
        stop: Default::default(),
        answered: CancellationToken::new(),
    })
    .await;
    let (stdout, stderr) = collect.await.expect("the output");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    );
    assert_eq!(code, 0, "{args:?}: {stdout}{stderr}");
    (code, stdout)
}

fn username_password(password: &str) -> String {
    format!(
        "<com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>\
           <scope>GLOBAL</scope><id>deploy</id><description>deploy user</description>\
           <username>ci-bot</username><password>{password}</password>\
         </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>"
    )
}

#[tokio::test]
async fn no_secret_enters_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = AppState::for_tests(dir.path());
    let (audit, writer) = AuditLog::start(state.store.clone(), Retention::default());
    state.audit = audit;

    cli(&state, &["create-user", "bob"], "").await;
    cli(&state, &["set-password", "bob"], &format!("{PASSWORD}\n")).await;
    let (_, token) = cli(&state, &["create-api-token", "laptop", "-user", "bob"], "").await;
    let token = token.trim().to_owned();
    assert_eq!(token.len(), 34, "{token}");
    cli(&state, &["grant-permissions", "bob", "Job/Build"], "").await;

    let store = "system::system::jenkins";
    cli(
        &state,
        &["create-credentials-by-xml", store, "_"],
        &username_password(CREDENTIAL_PASSWORD),
    )
    .await;
    cli(
        &state,
        &["update-credentials-by-xml", store, "_", "deploy"],
        &username_password(CREDENTIAL_PASSWORD_NEW),
    )
    .await;
    cli(
        &state,
        &["create-credentials-by-xml", store, "_"],
        &format!(
            "<org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>\
               <scope>GLOBAL</scope><id>api</id><secret>{SECRET_TEXT}</secret>\
             </org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>"
        ),
    )
    .await;

    let job = format!(
        "<project><properties><hudson.model.ParametersDefinitionProperty><parameterDefinitions>\
           <hudson.model.PasswordParameterDefinition><name>PW</name>\
             <defaultValue>{PARAMETER_DEFAULT}</defaultValue>\
           </hudson.model.PasswordParameterDefinition>\
         </parameterDefinitions></hudson.model.ParametersDefinitionProperty></properties>\
         <builders/></project>"
    );
    cli(&state, &["create-job", "deploy"], &job).await;
    cli(
        &state,
        &["build", "deploy", "-p", &format!("PW={PARAMETER_VALUE}")],
        "",
    )
    .await;

    crate::nodes::create(
        &state,
        NodeConfig::inbound("n1"),
        &super::Actor::new("admin", None),
    )
    .await
    .unwrap();
    cli(
        &state,
        &[
            "create-terminal",
            "box",
            "-node",
            "n1",
            "-driver",
            "ssh",
            "-param",
            "host=h",
            "-param",
            "user=u",
            "-param",
            &format!("password={TERMINAL_PASSWORD}"),
        ],
        "",
    )
    .await;

    state.audit.close();
    writer.finish(std::time::Duration::from_secs(30)).await;
    let rows = state
        .store
        .call(|c| page(c, &Filter::default(), 0, 10_000))
        .await
        .unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    for expected in [
        "user.create",
        "user.set-password",
        "token.create",
        "permission.grant",
        "credential.create",
        "credential.update",
        "job.create",
        "build.queue",
        "node.create",
        "terminal.create",
    ] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    let queued = rows.iter().find(|r| r.action == "build.queue").unwrap();
    assert!(
        queued.details.contains(r#""parameters":["PW"]"#),
        "{queued:?}"
    );
    assert_eq!(queued.remote.as_deref(), Some("192.0.2.7"));
    assert_eq!(queued.user, "admin");
    let all: String = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {:?} {}\n",
                r.user, r.action, r.target, r.time_ms, r.remote, r.details
            )
        })
        .collect();
    for secret in [
        PASSWORD,
        token.as_str(),
        CREDENTIAL_PASSWORD,
        CREDENTIAL_PASSWORD_NEW,
        SECRET_TEXT,
        PARAMETER_VALUE,
        PARAMETER_DEFAULT,
        TERMINAL_PASSWORD,
    ] {
        assert!(
            !all.contains(secret),
            "{secret:?} is in the audit log:\n{all}"
        );
    }
}
