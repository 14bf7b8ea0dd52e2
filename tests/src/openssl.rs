//! Certificates made the way users make them: with the `openssl` command line, whose
//! defaults (a self-signed certificate marked `CA:TRUE`) differ from what a library like
//! rcgen makes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate and its key, PEM, in a temporary directory.
pub struct OpensslCert {
    dir: tempfile::TempDir,
    pub cert_pem: String,
    pub key_pem: String,
}

impl OpensslCert {
    /// Where the certificate is, for `-cert @FILE` and `SSL_CERT_FILE`.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The certificate's basic constraints as `openssl x509 -ext basicConstraints` prints them.
    pub fn basic_constraints(&self) -> String {
        openssl(
            &[
                "x509",
                "-noout",
                "-ext",
                "basicConstraints",
                "-in",
                path_str(&self.cert_path()),
            ],
            self.dir.path(),
        )
    }
}

/// `openssl req -x509 -newkey ec … -subj SUBJECT ADDEXT…`: a self-signed P-256 certificate
/// valid for two days, with OpenSSL's default extensions plus `addext` ones.
pub fn self_signed(subject: &str, addext: &[&str]) -> OpensslCert {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        subject,
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
    ];
    for ext in addext {
        args.extend(["-addext", ext]);
    }
    openssl(&args, dir.path());
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    OpensslCert {
        cert_pem: read("cert.pem"),
        key_pem: read("key.pem"),
        dir,
    }
}

/// What `openssl req -x509` makes when told the names to serve: `localhost` and 127.0.0.1.
pub fn self_signed_localhost() -> OpensslCert {
    self_signed(
        "/CN=localhost",
        &["subjectAltName=IP:127.0.0.1,DNS:localhost"],
    )
}

/// Runs `openssl ARGS` in `dir`; its stdout.
fn openssl(args: &[&str], dir: &Path) -> String {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line is needed by the TLS tests");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}
