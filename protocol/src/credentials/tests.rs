use proptest::prelude::*;

use super::list::{display_name, render_list};
use super::*;

fn user_pass(id: &str, description: &str, username: &str, password: &str) -> Credential {
    Credential {
        id: id.into(),
        description: description.into(),
        scope: Scope::Global,
        kind: CredentialKind::UsernamePassword {
            username: username.into(),
            password: SecretString::new(password),
            username_secret: Some(false),
        },
    }
}

fn secret_text(id: &str, description: &str, secret: &str) -> Credential {
    Credential {
        id: id.into(),
        description: description.into(),
        scope: Scope::Global,
        kind: CredentialKind::SecretText {
            secret: SecretString::new(secret),
        },
    }
}

fn secret_file(id: &str, file_name: &str, content: &[u8]) -> Credential {
    Credential {
        id: id.into(),
        description: String::new(),
        scope: Scope::System,
        kind: CredentialKind::SecretFile {
            file_name: file_name.into(),
            content: SecretBytes::new(content.to_vec()),
        },
    }
}

const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----";

fn ssh_key(passphrase: Option<&str>) -> Credential {
    Credential {
        id: "deploy-key".into(),
        description: "prod hosts".into(),
        scope: Scope::Global,
        kind: CredentialKind::SshPrivateKey {
            username: "deploy".into(),
            username_secret: Some(true),
            private_key: SecretString::new(KEY),
            passphrase: passphrase.map(SecretString::new),
        },
    }
}

/// The document the credentials plugin's own CLI test creates credentials from.
const PLUGIN_EXAMPLE: &str =
    "<com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
  <scope>GLOBAL</scope>
  <id>smokey-id</id>
  <description>created from xml</description>
  <username>example-com-deployer</username>
  <password>super-secret</password>
</com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>";

#[test]
fn the_plugin_example_reads() {
    let c = Credential::from_xml(PLUGIN_EXAMPLE).unwrap();
    assert_eq!(c.id, "smokey-id");
    assert_eq!(c.description, "created from xml");
    assert_eq!(c.scope, Scope::Global);
    let CredentialKind::UsernamePassword {
        username,
        password,
        username_secret,
    } = &c.kind
    else {
        panic!("{c:?}");
    };
    assert_eq!(username, "example-com-deployer");
    assert_eq!(password.expose(), "super-secret");
    // Absent, the flag is unset, and Jenkins masks the username.
    assert_eq!(*username_secret, None);
    assert!(c.kind.username_is_secret());
}

#[test]
fn redacted_username_password_is_what_get_credentials_as_xml_prints() {
    let c = user_pass("smokes-id", "smoke testing", "smoke", "smoke text");
    assert_eq!(
        c.to_xml_redacted(),
        "<com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
  <scope>GLOBAL</scope>
  <id>smokes-id</id>
  <description>smoke testing</description>
  <username>smoke</username>
  <password>
    <secret-redacted/>
  </password>
  <usernameSecret>false</usernameSecret>
</com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
"
    );
}

#[test]
fn redacted_forms_of_the_other_kinds() {
    assert_eq!(
        secret_text("token", "", "s3cr3t").to_xml_redacted(),
        "<org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
  <scope>GLOBAL</scope>
  <id>token</id>
  <description/>
  <secret>
    <secret-redacted/>
  </secret>
</org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
"
    );
    assert_eq!(
        secret_file("kubeconfig", "config", b"apiVersion: v1\n").to_xml_redacted(),
        "<org.jenkinsci.plugins.plaincredentials.impl.FileCredentialsImpl>
  <scope>SYSTEM</scope>
  <id>kubeconfig</id>
  <description/>
  <fileName>config</fileName>
  <secretBytes>
    <secret-redacted/>
  </secretBytes>
</org.jenkinsci.plugins.plaincredentials.impl.FileCredentialsImpl>
"
    );
    assert_eq!(
        ssh_key(Some("open sesame")).to_xml_redacted(),
        "<com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey>
  <scope>GLOBAL</scope>
  <id>deploy-key</id>
  <description>prod hosts</description>
  <username>deploy</username>
  <usernameSecret>true</usernameSecret>
  <passphrase>
    <secret-redacted/>
  </passphrase>
  <privateKeySource class=\"com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey$DirectEntryPrivateKeySource\">
    <privateKey>
      <secret-redacted/>
    </privateKey>
  </privateKeySource>
</com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey>
"
    );
    // Without a passphrase there is no element for it, as XStream leaves out a null field.
    assert!(!ssh_key(None).to_xml_redacted().contains("passphrase"));
}

#[test]
fn stored_forms_read_back() {
    for c in [
        user_pass("a", "b", "c", "  spaced\tpassword \r\n"),
        secret_text("t", "d", "line1\nline2"),
        secret_file("f", "id_rsa.pub", &[0, 1, 2, 255]),
        secret_file("empty", "empty.txt", b""),
        ssh_key(Some("pass")),
        ssh_key(None),
    ] {
        let stored = c.to_xml_stored();
        assert_eq!(Credential::from_xml(&stored).unwrap(), c, "{stored}");
    }
}

#[test]
fn secret_bytes_are_base64() {
    let c = secret_file("f", "secret.txt", b"This is Base64 encoded plain text\n");
    assert!(
        c.to_xml_stored().contains(
            "<secretBytes>VGhpcyBpcyBCYXNlNjQgZW5jb2RlZCBwbGFpbiB0ZXh0Cg==</secretBytes>"
        )
    );
    // Line breaks and missing padding, as hand-written or wrapped base64 has them.
    let doc = "<org.jenkinsci.plugins.plaincredentials.impl.FileCredentialsImpl>
  <id>f</id><fileName>secret.txt</fileName>
  <secretBytes>
    VGhpcyBpcyBCYXNlNjQgZW5jb2Rl
    ZCBwbGFpbiB0ZXh0Cg
  </secretBytes>
</org.jenkinsci.plugins.plaincredentials.impl.FileCredentialsImpl>";
    let read = Credential::from_xml(doc).unwrap();
    let CredentialKind::SecretFile { content, .. } = &read.kind else {
        panic!("{read:?}");
    };
    assert_eq!(content.expose(), b"This is Base64 encoded plain text\n");
    let bad = doc.replace("ZCBwbGFp", "ZCB*bGFp");
    assert_eq!(Credential::from_xml(&bad), Err(CredentialError::BadBase64));
}

#[test]
fn a_jenkins_export_of_an_ssh_key_reads() {
    // As `list-credentials-as-xml` writes one: the key on the lines after <privateKey>, an
    // empty passphrase, the plugin attribute.
    let doc = format!(
        "<com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey plugin=\"ssh-credentials@1.19\">
  <scope>GLOBAL</scope>
  <id>ssh-devel</id>
  <description></description>
  <username>flederwiesel</username>
  <usernameSecret>true</usernameSecret>
  <passphrase></passphrase>
  <privateKeySource class=\"{DIRECT_ENTRY_KEY_SOURCE}\">
    <privateKey>
{KEY}
    </privateKey>
  </privateKeySource>
</com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey>"
    );
    let c = Credential::from_xml(&doc).unwrap();
    let CredentialKind::SshPrivateKey {
        username,
        private_key,
        passphrase,
        ..
    } = &c.kind
    else {
        panic!("{c:?}");
    };
    assert_eq!(username, "flederwiesel");
    assert_eq!(private_key.expose(), KEY);
    assert_eq!(*passphrase, None);
    assert_eq!(display_name(&c), "flederwiesel");
}

#[test]
fn scope_and_flags() {
    let doc = |scope: &str| {
        format!(
            "<{STRING_CREDENTIALS}><scope>{scope}</scope><id>x</id><secret>s</secret></{STRING_CREDENTIALS}>"
        )
    };
    assert_eq!(
        Credential::from_xml(&doc("SYSTEM")).unwrap().scope,
        Scope::System
    );
    assert_eq!(Credential::from_xml(&doc("")).unwrap().scope, Scope::Global);
    let err = Credential::from_xml(&doc("USER")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid scope \"USER\": expected GLOBAL or SYSTEM"
    );
    let flag = PLUGIN_EXAMPLE.replace(
        "</password>",
        "</password><usernameSecret>maybe</usernameSecret>",
    );
    assert_eq!(
        Credential::from_xml(&flag).unwrap_err().to_string(),
        "invalid <usernameSecret> \"maybe\": expected true or false"
    );
    let flag = PLUGIN_EXAMPLE.replace(
        "</password>",
        "</password><usernameSecret>FALSE</usernameSecret>",
    );
    assert!(
        !Credential::from_xml(&flag)
            .unwrap()
            .kind
            .username_is_secret()
    );
}

#[test]
fn unknown_kinds_are_refused_naming_the_four() {
    let err = Credential::from_xml(
        "<com.cloudbees.plugins.credentials.impl.CertificateCredentialsImpl><id>c</id></com.cloudbees.plugins.credentials.impl.CertificateCredentialsImpl>",
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("<com.cloudbees.plugins.credentials.impl.CertificateCredentialsImpl>"),
        "{text}"
    );
    for known in [
        USERNAME_PASSWORD,
        STRING_CREDENTIALS,
        FILE_CREDENTIALS,
        SSH_PRIVATE_KEY,
    ] {
        assert!(text.contains(known), "{text}");
    }
    let source = format!(
        "<{SSH_PRIVATE_KEY}><id>k</id><privateKeySource class=\"com.cloudbees.jenkins.plugins.sshcredentials.impl.BasicSSHUserPrivateKey$FileOnMasterPrivateKeySource\"><privateKeyFile>/home/x/.ssh/id_rsa</privateKeyFile></privateKeySource></{SSH_PRIVATE_KEY}>"
    );
    assert!(matches!(
        Credential::from_xml(&source),
        Err(CredentialError::UnsupportedKeySource(_))
    ));
}

#[test]
fn secrets_encrypted_by_another_jenkins_are_refused() {
    // The shape of Jenkins' Secret: version 1, a 16-byte IV, 16 bytes of data.
    let encrypted = "{AQAAABAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=}";
    let doc = PLUGIN_EXAMPLE.replace("super-secret", encrypted);
    let err = Credential::from_xml(&doc).unwrap_err();
    assert_eq!(err, CredentialError::Encrypted("password"));
    assert!(
        err.to_string()
            .contains("only that Jenkins' master key can decrypt")
    );
    assert!(!err.to_string().contains("AQAAAB"));
    let file = format!(
        "<{FILE_CREDENTIALS}><id>f</id><fileName>a</fileName><secretBytes>{{c2VjcmV0}}</secretBytes></{FILE_CREDENTIALS}>"
    );
    assert_eq!(
        Credential::from_xml(&file),
        Err(CredentialError::Encrypted("secretBytes"))
    );
    // Braces around what is not Jenkins' encrypted form: a password like any other.
    let doc = PLUGIN_EXAMPLE.replace("super-secret", "{not-encrypted}");
    assert!(Credential::from_xml(&doc).is_ok());
}

#[test]
fn redacted_secrets_are_refused_on_the_way_in() {
    // What get-credentials-as-xml printed, sent back to update-credentials-by-xml.
    let doc = user_pass("a", "", "u", "p").to_xml_redacted();
    assert_eq!(
        Credential::from_xml(&doc),
        Err(CredentialError::Redacted("password"))
    );
    let doc = ssh_key(None).to_xml_redacted();
    assert_eq!(
        Credential::from_xml(&doc),
        Err(CredentialError::Redacted("privateKey"))
    );
}

#[test]
fn missing_and_invalid_values() {
    let missing = format!("<{STRING_CREDENTIALS}><id>x</id></{STRING_CREDENTIALS}>");
    assert_eq!(
        Credential::from_xml(&missing).unwrap_err().to_string(),
        "<secret> is missing: secret text credentials need it"
    );
    let bad_id = PLUGIN_EXAMPLE.replace("smokey-id", "smokey id");
    assert!(
        Credential::from_xml(&bad_id)
            .unwrap_err()
            .to_string()
            .contains("Unacceptable characters")
    );
    let long_id = PLUGIN_EXAMPLE.replace("smokey-id", &"a".repeat(MAX_ID_LEN + 1));
    assert!(matches!(
        Credential::from_xml(&long_id),
        Err(CredentialError::TooLong { element: "id", .. })
    ));
    // No id: Jenkins generates one, and so must the controller.
    let no_id = PLUGIN_EXAMPLE.replace("<id>smokey-id</id>", "");
    assert_eq!(Credential::from_xml(&no_id).unwrap().id, "");
    for name in ["", "..", "a/b", "..\\b", "a\u{1b}b"] {
        let doc = format!(
            "<{FILE_CREDENTIALS}><id>f</id><fileName>{name}</fileName><secretBytes>AA==</secretBytes></{FILE_CREDENTIALS}>"
        );
        assert!(
            matches!(
                Credential::from_xml(&doc),
                Err(CredentialError::BadFileName { .. })
            ),
            "{name:?}"
        );
    }
    let dup = PLUGIN_EXAMPLE.replace("</password>", "</password><password>again</password>");
    assert!(matches!(
        Credential::from_xml(&dup),
        Err(CredentialError::Xml(XmlError::Duplicate { .. }))
    ));
    let nested = PLUGIN_EXAMPLE.replace("example-com-deployer", "<b>x</b>");
    assert_eq!(
        Credential::from_xml(&nested),
        Err(CredentialError::NotText("username"))
    );
    let long = PLUGIN_EXAMPLE.replace("super-secret", &"s".repeat(MAX_SECRET_TEXT_LEN + 1));
    let err = Credential::from_xml(&long).unwrap_err();
    assert!(matches!(
        err,
        CredentialError::TooLong {
            element: "password",
            ..
        }
    ));
    assert!(!err.to_string().contains("sss"));
    assert!(matches!(
        Credential::from_xml("<a"),
        Err(CredentialError::Xml(_))
    ));
}

#[test]
fn ids_follow_jenkins_rule() {
    assert_eq!(validate_id("my_cred-1.2"), Ok(()));
    assert_eq!(validate_id(&"a".repeat(MAX_ID_LEN)), Ok(()));
    assert!(validate_id(&"a".repeat(MAX_ID_LEN + 1)).is_err());
    assert!(validate_id("").is_err());
    assert!(validate_id("a b").is_err());
    assert!(validate_id("é").is_err());
}

#[test]
fn secrets_never_print_in_debug() {
    for c in [
        user_pass("a", "b", "c", "hunter2"),
        secret_text("t", "", "hunter2"),
        secret_file("f", "x", b"hunter2"),
        ssh_key(Some("hunter2")),
    ] {
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("OPENSSH"), "{debug}");
    }
}

#[test]
fn display_names_follow_the_name_providers() {
    assert_eq!(
        display_name(&user_pass("s", "smoke testing", "smoke", "x")),
        "smoke/****** (smoke testing)"
    );
    assert_eq!(
        display_name(&user_pass("s", "  ", "smoke", "x")),
        "smoke/******"
    );
    assert_eq!(
        display_name(&secret_text("token", " GitHub token ", "x")),
        "GitHub token"
    );
    assert_eq!(display_name(&secret_text("token", "", "x")), "token");
    assert_eq!(
        display_name(&secret_text(
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "",
            "x"
        )),
        "Secret text"
    );
    assert_eq!(display_name(&secret_file("f", "config", b"")), "config");
    assert_eq!(display_name(&ssh_key(None)), "deploy (prod hosts)");
}

#[test]
fn list_of_an_empty_store() {
    assert_eq!(
        render_list(&[]),
        "=================
Domain           (global)
Description      \n# of Credentials 0
=================
Id               Name
================ \n=================

"
    );
}

#[test]
fn list_with_credentials() {
    let list = [
        user_pass("smokes-id", "smoke testing", "smoke", "smoke text"),
        secret_text("a-rather-long-credentials-id", "", "x"),
    ];
    assert_eq!(
        render_list(&list),
        "=========================================================
Domain                       (global)
Description                  \n# of Credentials             2
=========================================================
Id                           Name
============================ ============================
smokes-id                    smoke/****** (smoke testing)
a-rather-long-credentials-id a-rather-long-credentials-id
=========================================================

"
    );
    // Collapsed as the plugin's test compares it.
    let collapsed = render_list(&list[..1])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(collapsed.contains("Domain (global) Description # of Credentials 1 "));
    assert!(collapsed.contains(" smokes-id smoke/****** (smoke testing) "));
}

#[test]
fn list_escapes_hidden_characters_and_pads_as_java_counts() {
    let list = [secret_text("t", "a\u{1b}[2Jb \u{1F600}", "x")];
    let text = render_list(&list);
    assert!(
        text.contains("t                a\\u{1b}[2Jb \u{1F600}\n"),
        "{text}"
    );
    // The name is 13 characters, the emoji two Java characters: the rule is 16 + 1 + 14.
    assert!(text.starts_with(&format!("{}\n", "=".repeat(31))), "{text}");
}

/// A value a stored form keeps exactly: anything but NUL and the two noncharacters XML
/// cannot hold.
fn xml_text() -> impl Strategy<Value = String> {
    "[^\u{0}\u{fffe}\u{ffff}]{0,40}"
}

/// A value read trimmed: no whitespace at either end.
fn trimmed_text() -> impl Strategy<Value = String> {
    xml_text().prop_map(|s| s.trim().to_owned())
}

fn any_credential() -> impl Strategy<Value = Credential> {
    let kind = prop_oneof![
        (
            trimmed_text(),
            xml_text(),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(u, p, f)| {
                CredentialKind::UsernamePassword {
                    username: u,
                    password: SecretString::new(p),
                    username_secret: f,
                }
            }),
        xml_text().prop_map(|s| CredentialKind::SecretText {
            secret: SecretString::new(s)
        }),
        (
            "[a-z][a-z0-9.]{0,20}",
            proptest::collection::vec(any::<u8>(), 0..200)
        )
            .prop_map(|(n, c)| {
                CredentialKind::SecretFile {
                    file_name: n,
                    content: SecretBytes::new(c),
                }
            }),
        (
            trimmed_text(),
            proptest::option::of(any::<bool>()),
            trimmed_text(),
            proptest::option::of(xml_text().prop_filter("empty is none", |p| !p.is_empty())),
        )
            .prop_map(|(u, f, k, p)| CredentialKind::SshPrivateKey {
                username: u,
                username_secret: f,
                private_key: SecretString::new(k),
                passphrase: p.map(SecretString::new),
            }),
    ];
    (
        "[a-zA-Z0-9_.-]{1,30}",
        trimmed_text(),
        prop_oneof![Just(Scope::Global), Just(Scope::System)],
        kind,
    )
        .prop_map(|(id, description, scope, kind)| Credential {
            id,
            description,
            scope,
            kind,
        })
}

/// The secrets of `c`, as text (a file's content as its bytes, lossily).
fn secret_texts(c: &Credential) -> Vec<String> {
    match &c.kind {
        CredentialKind::UsernamePassword { password, .. } => vec![password.expose().into()],
        CredentialKind::SecretText { secret } => vec![secret.expose().into()],
        CredentialKind::SecretFile { content, .. } => vec![
            String::from_utf8_lossy(content.expose()).into_owned(),
            content.to_base64(),
        ],
        CredentialKind::SshPrivateKey {
            private_key,
            passphrase,
            ..
        } => std::iter::once(private_key.expose().to_owned())
            .chain(passphrase.as_ref().map(|p| p.expose().to_owned()))
            .collect(),
    }
}

proptest! {
    #[test]
    fn stored_form_round_trips(c in any_credential()) {
        prop_assert_eq!(Credential::from_xml(&c.to_xml_stored()).unwrap(), c);
    }

    #[test]
    fn serde_form_round_trips(c in any_credential()) {
        let bytes = postcard::to_allocvec(&c).unwrap();
        prop_assert_eq!(postcard::from_bytes::<Credential>(&bytes).unwrap(), c);
    }

    /// No secret of 8 characters or more appears in the redacted form (shorter ones may
    /// happen to be any word of it, `GLOBAL` say).
    #[test]
    fn redacted_form_holds_no_secret(c in any_credential(), marker in "[a-zA-Z0-9]{8,20}") {
        let mut c = c;
        match &mut c.kind {
            CredentialKind::UsernamePassword { password, .. } => *password = SecretString::new(format!("{marker}{}", password.expose())),
            CredentialKind::SecretText { secret } => *secret = SecretString::new(format!("{}{marker}", secret.expose())),
            CredentialKind::SecretFile { content, .. } => *content = SecretBytes::new([marker.as_bytes(), content.expose()].concat()),
            CredentialKind::SshPrivateKey { private_key, passphrase, .. } => {
                *private_key = SecretString::new(format!("{marker}{}", private_key.expose()));
                *passphrase = passphrase.as_ref().map(|p| SecretString::new(format!("{marker}{}", p.expose())));
            }
        }
        let redacted = c.to_xml_redacted();
        prop_assert!(!redacted.contains(&marker), "{}", redacted);
        for secret in secret_texts(&c) {
            if secret.trim().chars().count() >= 8 {
                prop_assert!(!redacted.contains(secret.trim()), "{}", redacted);
            }
        }
        prop_assert_eq!(redacted.matches("<secret-redacted/>").count(), secret_count(&c));
    }

    #[test]
    fn arbitrary_documents_never_panic(doc in "\\PC{0,300}") {
        let _ = Credential::from_xml(&doc);
    }

    #[test]
    fn arbitrary_children_never_panic(
        class in prop_oneof![Just(USERNAME_PASSWORD), Just(STRING_CREDENTIALS), Just(FILE_CREDENTIALS), Just(SSH_PRIVATE_KEY)],
        children in proptest::collection::vec(
            (prop_oneof![Just("scope"), Just("id"), Just("description"), Just("username"), Just("password"), Just("secret"), Just("fileName"), Just("secretBytes"), Just("usernameSecret"), Just("passphrase"), Just("privateKeySource"), Just("privateKey")], "[^<&\u{0}]{0,30}"),
            0..8,
        ),
    ) {
        let body: String = children.iter().map(|(n, t)| format!("<{n}>{t}</{n}>")).collect();
        let _ = Credential::from_xml(&format!("<{class}>{body}</{class}>"));
    }
}

/// How many secrets the redacted form hides.
fn secret_count(c: &Credential) -> usize {
    match &c.kind {
        CredentialKind::SshPrivateKey { passphrase, .. } => 1 + usize::from(passphrase.is_some()),
        _ => 1,
    }
}
