//! Command-line parsing tests: both spellings, `@FILE`, headers, the legacy and JNLP forms.

use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A self-signed certificate made with `openssl req -x509`; only its form matters here.
const CERT_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBhjCCAS2gAwIBAgIUf4wxXj9lMb6bSqJL+jIxXiO0x48wCgYIKoZIzj0EAwIw\n\
GTEXMBUGA1UEAwwOY2kuZXhhbXBsZS5jb20wHhcNMjYxMjA3MDUyODMxWhcNMjYx\n\
MjA4MDUyODMxWjAZMRcwFQYDVQQDDA5jaS5leGFtcGxlLmNvbTBZMBMGByqGSM49\n\
AgEGCCqGSM49AwEHA0IABNQOtdK1ThP/64ia20uCqPP8tVQZTZDKJeskmGif1yTJ\n\
hgXCSkrq6hlvvTjbkJDQiUiSaFpJmIq1v7o4eoCad2ijUzBRMB0GA1UdDgQWBBR0\n\
0+LvJqMTAvC/C5M3iHauHE2SRzAfBgNVHSMEGDAWgBR00+LvJqMTAvC/C5M3iHau\n\
HE2SRzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIA5I+GIXfe78\n\
bw26rDsk8mq+SnyUs68db3+eHCbV6REwAiAx40TeOjJtkm6ap0+XGxzGhhAM2Sv/\n\
YGt70o+2M8Bs0g==\n\
-----END CERTIFICATE-----\n";

fn parse(args: &[&str]) -> Result<AgentOptions, clap::Error> {
    parse_args(std::iter::once("agent").chain(args.iter().copied()))
}

fn direct(options: &AgentOptions) -> (&Url, &str, &NodeSecret) {
    match &options.source {
        Source::Direct {
            root,
            node_name,
            secret,
        } => (root, node_name, secret),
        other => panic!("expected -url form, got {other:?}"),
    }
}

#[test]
fn single_dash_form() {
    let o = parse(&[
        "-webSocket",
        "-url",
        "http://ci:8080/jenkins",
        "-name",
        "linux-1",
        "-secret",
        SECRET,
        "-workDir",
        "/tmp/agent",
    ])
    .unwrap();
    let (root, name, secret) = direct(&o);
    assert_eq!(root.as_str(), "http://ci:8080/jenkins/");
    assert_eq!(name, "linux-1");
    assert_eq!(secret.expose(), SECRET);
    assert_eq!(o.work_dir, Some(PathBuf::from("/tmp/agent")));
    assert_eq!(o.internal_dir, None);
    assert!(!o.no_reconnect && !o.tls.no_certificate_check);
}

#[test]
fn double_dash_form_and_every_option() {
    let o = parse(&[
        "--webSocket",
        "--url=https://ci/",
        "--name",
        "n",
        "--secret",
        SECRET,
        "--internalDir",
        "int",
        "--failIfWorkDirIsMissing",
        "--noReconnect",
        "--noReconnectAfter",
        "5m",
        "-disableHttpsCertValidation",
        "-proxyCredentials",
        "bob:pw",
        "-cert",
        CERT_PEM,
    ])
    .unwrap();
    assert_eq!(o.internal_dir.as_deref(), Some("int"));
    assert!(o.fail_if_work_dir_is_missing && o.no_reconnect);
    assert_eq!(o.no_reconnect_after, Some(Duration::from_secs(300)));
    assert!(o.tls.no_certificate_check);
    assert_eq!(o.tls.extra_ca_pem.as_deref(), Some(CERT_PEM.as_bytes()));
    assert_eq!(
        o.proxy_credentials.as_ref().map(|c| c.expose()),
        Some("bob:pw")
    );
    assert_eq!(
        format!("{:?}", o.proxy_credentials),
        "Some(Credentials(***))"
    );
    assert!(!format!("{o:?}").contains(SECRET));
}

#[test]
fn at_file_secret_and_whole_file_cert() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let cert_file = dir.path().join("ca.pem");
    // Two certificates: the whole file is read, not its first line.
    let bundle = format!("{CERT_PEM}{CERT_PEM}");
    std::fs::write(&cert_file, &bundle).unwrap();
    let o = parse(&[
        "-webSocket",
        "-url",
        "http://ci/",
        "-name",
        "n",
        "-secret",
        &format!("@{}", secret_file.display()),
        "-cert",
        &format!("@{}", cert_file.display()),
    ])
    .unwrap();
    assert_eq!(direct(&o).2.expose(), SECRET);
    assert_eq!(o.tls.extra_ca_pem.as_deref(), Some(bundle.as_bytes()));

    let err = parse(&[
        "-webSocket",
        "-url",
        "http://ci/",
        "-name",
        "n",
        "-secret",
        "@/nonexistent/steward",
    ])
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
}

#[test]
fn cert_as_a_bare_path_asks_whether_at_file_was_meant() {
    let dir = tempfile::tempdir().unwrap();
    let cert_file = dir.path().join("ci.pem");
    std::fs::write(&cert_file, CERT_PEM).unwrap();
    let path = cert_file.display().to_string();
    let err = parse(&[
        "-webSocket",
        "-url",
        "https://ci/",
        "-name",
        "n",
        "-secret",
        SECRET,
        "-cert",
        &path,
    ])
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ValueValidation);
    assert!(
        err.to_string().contains(&format!(
            "invalid CA certificate: no PEM certificate found in the -cert value; did you mean @{path}?"
        )),
        "{err}"
    );
}

#[test]
fn web_socket_headers_split_at_first_equals_and_later_wins() {
    let o = parse(&[
        "-webSocket",
        "-url",
        "http://ci/",
        "-name",
        "n",
        "-secret",
        SECRET,
        "-webSocketHeader",
        "X-A=1=2",
        "-webSocketHeader",
        "X-B=b",
        "-webSocketHeader",
        "x-a=3",
    ])
    .unwrap();
    assert_eq!(
        o.web_socket_headers,
        [
            ("x-a".to_owned(), "3".to_owned()),
            ("X-B".to_owned(), "b".to_owned())
        ]
    );
    for bad in ["novalue", "bad name=1", "X=\u{1}"] {
        let err = parse(&[
            "-webSocket",
            "-url",
            "http://ci/",
            "-name",
            "n",
            "-secret",
            SECRET,
            "-webSocketHeader",
            bad,
        ])
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad}");
    }
}

#[test]
fn positional_legacy_form() {
    let o = parse(&["-webSocket", "-url", "http://ci/", SECRET, "linux-2"]).unwrap();
    let (_, name, secret) = direct(&o);
    assert_eq!(name, "linux-2");
    assert_eq!(secret.expose(), SECRET);

    let err = parse(&["-webSocket", "-url", "http://ci/", SECRET]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    let err = parse(&[
        "-webSocket",
        "-url",
        "http://ci/",
        "-name",
        "x",
        SECRET,
        "linux-2",
    ])
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
}

#[test]
fn jnlp_url_form() {
    let o = parse(&[
        "-webSocket",
        "-jnlpUrl",
        "http://ci/computer/n/jenkins-agent.jnlp",
        "-secret",
        SECRET,
        "-workDir",
        "/w",
    ])
    .unwrap();
    match &o.source {
        Source::Jnlp {
            url,
            secret,
            web_socket,
            credentials,
        } => {
            assert_eq!(url.as_str(), "http://ci/computer/n/jenkins-agent.jnlp");
            assert_eq!(secret.as_ref().map(NodeSecret::expose), Some(SECRET));
            assert!(*web_socket);
            assert!(credentials.is_none());
        }
        other => panic!("{other:?}"),
    }
    // Without -secret the plain document is fetched, with -jnlpCredentials when given.
    let plain = parse(&[
        "-jnlpUrl",
        "http://ci/x.jnlp",
        "-jnlpCredentials",
        "admin:t0ken",
    ])
    .unwrap();
    match &plain.source {
        Source::Jnlp {
            credentials: Some(c),
            ..
        } => assert_eq!(c.expose(), "admin:t0ken"),
        other => panic!("{other:?}"),
    }
    assert!(
        parse(&[
            "-jnlpUrl",
            "http://ci/x.jnlp",
            "-jnlpCredentials",
            "no-colon"
        ])
        .is_err()
    );
}

#[test]
fn jnlp_url_conflicts_with_url_and_name() {
    for extra in [["-url", "http://ci/"], ["-name", "n"]] {
        let mut args = vec!["-webSocket", "-jnlpUrl", "http://ci/x.jnlp"];
        args.extend(extra);
        let err = parse(&args).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        let text = err.to_string();
        assert!(
            text.contains("-jnlpUrl cannot be combined with -url or -name"),
            "{text}"
        );
        assert!(text.contains("Usage:"), "{text}");
    }
}

#[test]
fn usage_errors() {
    let cases: &[(&[&str], ErrorKind)] = &[
        (
            &["-url", "http://ci/", "-name", "n", "-secret", "s"],
            ErrorKind::MissingRequiredArgument,
        ),
        (
            &["-webSocket", "-name", "n", "-secret", "s"],
            ErrorKind::MissingRequiredArgument,
        ),
        (
            &["-webSocket", "-url", "http://ci/", "-secret", "s"],
            ErrorKind::MissingRequiredArgument,
        ),
        (
            &["-webSocket", "-url", "http://ci/", "-name", "n"],
            ErrorKind::MissingRequiredArgument,
        ),
        (
            &[
                "-webSocket",
                "-url",
                "ftp://ci/",
                "-name",
                "n",
                "-secret",
                "s",
            ],
            ErrorKind::ValueValidation,
        ),
        (&["-bogus"], ErrorKind::UnknownArgument),
        (
            &[
                "-webSocket",
                "-url",
                "http://ci/",
                "-name",
                "n",
                "-secret",
                "s",
                "-noReconnectAfter",
                "30",
            ],
            ErrorKind::ValueValidation,
        ),
        (
            &[
                "-webSocket",
                "-url",
                "http://ci/",
                "-name",
                "n",
                "-secret",
                "s",
                "-internalDir",
                "../x",
            ],
            ErrorKind::ValueValidation,
        ),
        (
            &[
                "-webSocket",
                "-url",
                "http://ci/",
                "-name",
                "n",
                "-secret",
                "s",
                "-proxyCredentials",
                "nocolon",
            ],
            ErrorKind::ValueValidation,
        ),
    ];
    for (args, kind) in cases {
        let err = parse(args).unwrap_err();
        assert_eq!(err.kind(), *kind, "{args:?}: {err}");
        assert_eq!(err.exit_code(), 2, "{args:?}");
    }
}

#[test]
fn help_and_version_exit_zero() {
    for (arg, kind) in [
        ("-help", ErrorKind::DisplayHelp),
        ("--help", ErrorKind::DisplayHelp),
        ("-version", ErrorKind::DisplayVersion),
    ] {
        let err = parse(&[arg]).unwrap_err();
        assert_eq!(err.kind(), kind);
        assert_eq!(err.exit_code(), 0);
    }
}

#[test]
fn repeated_options_take_the_last_value() {
    let o = parse(&[
        "-webSocket",
        "-webSocket",
        "-url",
        "http://a/",
        "-url",
        "http://b/",
        "-name",
        "n",
        "-secret",
        SECRET,
    ])
    .unwrap();
    assert_eq!(direct(&o).0.as_str(), "http://b/");
}

#[test]
fn document_arguments_as_jenkins_writes_them() {
    let args: Vec<String> = [
        SECRET,
        "linux-1",
        "-webSocket",
        "-workDir",
        "/home/ci/agent",
        "-internalDir",
        "remoting",
        "-url",
        "https://ci.example.com/jenkins/",
    ]
    .map(String::from)
    .to_vec();
    let doc = parse_document_args(&args).unwrap();
    assert_eq!(doc.secret.as_ref().map(NodeSecret::expose), Some(SECRET));
    assert_eq!(doc.node_name.as_deref(), Some("linux-1"));
    assert!(doc.web_socket);
    assert_eq!(doc.work_dir, Some(PathBuf::from("/home/ci/agent")));
    assert_eq!(doc.internal_dir.as_deref(), Some("remoting"));
    assert_eq!(
        doc.root.as_ref().map(Url::as_str),
        Some("https://ci.example.com/jenkins/")
    );
}

#[test]
fn document_arguments_never_read_files() {
    let args = vec!["-secret".to_owned(), "@/etc/hostname".to_owned()];
    let doc = parse_document_args(&args).unwrap();
    assert_eq!(
        doc.secret.as_ref().map(NodeSecret::expose),
        Some("@/etc/hostname")
    );
    let err = parse_document_args(&["-bogus".to_owned()]).unwrap_err();
    assert!(err.contains("--bogus"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}
