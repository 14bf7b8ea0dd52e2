//! The command's arguments and environment, and what it prints for each answer; the calls
//! themselves are exercised against a running relay in `tests/breakpoint.rs`.

use std::collections::HashMap;

use steward_protocol::breakpoint::BreakpointStatus;

use super::*;

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

fn parsed(list: &[&str]) -> Result<Action, Failure> {
    parse(&args(list))
}

fn usage(list: &[&str]) -> String {
    match parsed(list) {
        Err(Failure::Usage(message)) => message,
        other => panic!("{list:?} gave {other:?}"),
    }
}

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn commands_and_their_options() {
    assert_eq!(parsed(&["status"]), Ok(Action::Status { json: false }));
    assert_eq!(
        parsed(&["status", "-json"]),
        Ok(Action::Status { json: true })
    );
    assert_eq!(
        parsed(&["status", "--json"]),
        Ok(Action::Status { json: true })
    );
    assert_eq!(parsed(&["extend"]), Ok(Action::Extend { by: None }));
    assert_eq!(
        parsed(&["extend", "--for", "1h"]),
        Ok(Action::Extend {
            by: Some(60 * MINUTE)
        })
    );
    assert_eq!(
        parsed(&["extend", "--for=90s"]),
        Ok(Action::Extend {
            by: Some(Duration::from_secs(90))
        })
    );
    assert_eq!(parsed(&["resume"]), Ok(Action::Resume));
    assert_eq!(parsed(&["wait"]), Ok(Action::Wait { at_most: None }));
    assert_eq!(
        parsed(&["wait", "-for", "30m"]),
        Ok(Action::Wait {
            at_most: Some(30 * MINUTE)
        })
    );
    for help in ["help", "-h", "--help"] {
        assert_eq!(parsed(&[help]), Ok(Action::Help));
    }
}

#[test]
fn usage_errors_say_what_is_wrong() {
    assert_eq!(usage(&[]), "no command given");
    assert_eq!(usage(&["stats"]), "unknown command \"stats\"");
    assert_eq!(usage(&["resume", "now"]), "unexpected argument \"now\"");
    assert_eq!(
        usage(&["resume", "--for", "1h"]),
        "unknown option \"--for\" for resume"
    );
    assert_eq!(
        usage(&["status", "-json=yes"]),
        "unknown option \"-json=yes\" for status"
    );
    assert_eq!(usage(&["extend", "--for"]), "--for needs a duration");
    assert_eq!(
        usage(&["extend", "--for", "30"]),
        "--for: duration \"30\" has no unit: write e.g. 30s, 5m or 1h"
    );
    assert!(usage(&["wait", "--for", "soon"]).starts_with("--for: duration \"soon\""));
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + use<> {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    move |name: &str| map.get(name).cloned()
}

const IN_A_SESSION: &[(&str, &str)] = &[
    ("JOB_NAME", "web"),
    ("BUILD_NUMBER", "7"),
    ("STEWARD_SSH_CONNECTION", "12"),
    ("STEWARD_BUILD_KEY", "k7"),
    ("STEWARD_AGENT_SOCKET", "/w/remoting/agent.sock"),
];

#[test]
fn the_build_comes_from_the_environment() {
    assert_eq!(
        target(env(IN_A_SESSION)),
        Ok(Target {
            build: BuildRef {
                job: "web".into(),
                number: 7
            },
            connection: Some(12),
            build_key: "k7".into(),
            socket: "/w/remoting/agent.sock".into(),
        })
    );
    let in_a_step = env(&[
        ("JOB_NAME", "web"),
        ("BUILD_NUMBER", "7"),
        ("STEWARD_BUILD_KEY", "k7"),
        ("STEWARD_AGENT_SOCKET", "/s"),
    ]);
    assert_eq!(target(in_a_step).unwrap().connection, None);
    // A node session has no build key: the command says where it works.
    let on_the_node = env(&[
        ("JOB_NAME", "web"),
        ("BUILD_NUMBER", "7"),
        ("STEWARD_AGENT_SOCKET", "/s"),
    ]);
    assert!(matches!(
        target(on_the_node),
        Err(Failure::Failed(message)) if message.starts_with("STEWARD_BUILD_KEY is not set")
    ));
}

fn failed(pairs: &[(&str, &str)]) -> String {
    match target(env(pairs)) {
        Err(Failure::Failed(message)) => message,
        other => panic!("{pairs:?} gave {other:?}"),
    }
}

#[test]
fn outside_a_build_it_says_so() {
    let outside = "not inside a Steward build (JOB_NAME and BUILD_NUMBER are not set)";
    assert_eq!(failed(&[]), outside);
    assert_eq!(
        failed(&[("JOB_NAME", "web"), ("BUILD_NUMBER", "")]),
        outside
    );
    assert_eq!(
        failed(&[("JOB_NAME", "web"), ("BUILD_NUMBER", "seven")]),
        "BUILD_NUMBER \"seven\" is not a build number"
    );
    assert_eq!(
        failed(&[("JOB_NAME", "web"), ("BUILD_NUMBER", "7")]),
        "STEWARD_AGENT_SOCKET is not set: run breakpoint in a build step or an SSH session on the agent"
    );
    assert_eq!(
        failed(&[
            ("JOB_NAME", "web"),
            ("BUILD_NUMBER", "7"),
            ("STEWARD_SSH_CONNECTION", "x"),
            ("STEWARD_AGENT_SOCKET", "/s"),
        ]),
        "STEWARD_SSH_CONNECTION \"x\" is not a connection number"
    );
}

#[test]
fn usage_comes_before_the_environment_and_help_needs_neither() {
    let mut out = Vec::new();
    assert!(matches!(
        run(&args(&["bogus"]), env(&[]), &mut out),
        Err(Failure::Usage(_))
    ));
    assert_eq!(run(&args(&["--help"]), env(&[]), &mut out), Ok(()));
    assert_eq!(String::from_utf8(out).unwrap(), USAGE);
    assert_eq!(Failure::Usage(String::new()).code(), 2);
    assert_eq!(Failure::Failed(String::new()).code(), 1);
}

fn status() -> BreakpointStatus {
    BreakpointStatus {
        job: "web".into(),
        number: 7,
        node: "linux-1".into(),
        reason: "the build failed".into(),
        started_ms: 1_000,
        expires_ms: 2_000,
        max_expires_ms: 3_000,
        connect_by_ms: None,
        resume_on_logout: true,
        hold_until_ms: Some(4_000),
        clients: vec![],
    }
}

fn printed(action: Action, reply: BreakpointReply) -> Result<String, Failure> {
    let mut out = Vec::new();
    print(&action, reply, &mut out)?;
    Ok(String::from_utf8(out).unwrap())
}

#[test]
fn answers_print_as_their_command_says() {
    let json = printed(
        Action::Status { json: true },
        BreakpointReply::Status(status()),
    )
    .unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["job"], "web");
    assert_eq!(value["expiresMs"], 2_000);
    assert_eq!(value["maxExpiresMs"], 3_000);
    assert_eq!(value["connectByMs"], serde_json::Value::Null);
    assert_eq!(value["resumeOnLogout"], true);
    assert_eq!(value["holdUntilMs"], 4_000);
    assert!(json.ends_with("}\n"));

    assert_eq!(
        printed(Action::Resume, BreakpointReply::Resumed),
        Ok("Resumed.\n".into())
    );
    assert_eq!(
        printed(
            Action::Wait { at_most: None },
            BreakpointReply::Ended {
                how: "resumed by alice".into()
            }
        ),
        Ok("Breakpoint ended: resumed by alice\n".into())
    );
    assert!(
        printed(
            Action::Extend { by: None },
            BreakpointReply::Status(status())
        )
        .unwrap()
        .starts_with("Breakpoint extended: it now expires at 1970-01-01T00:00:02Z (")
    );
}

#[test]
fn refusals_and_mismatched_answers_fail() {
    let refused = BreakpointReply::Refused {
        message: "build web #7 is not held at a breakpoint".into(),
    };
    assert_eq!(
        printed(Action::Resume, refused),
        Err(Failure::Failed(
            "build web #7 is not held at a breakpoint".into()
        ))
    );
    assert!(matches!(
        printed(Action::Status { json: false }, BreakpointReply::Resumed),
        Err(Failure::Failed(m)) if m.starts_with("unexpected answer from the agent")
    ));
}
