//! A real nginx in front of a controller, configured with the server block that
//! `docs/operations.md` tells operators to use (read from the file, so the tested config is
//! the documented one), TLS included, with its timeouts shortened for the test.
//!
//! nginx listens on a socket the test binds (port chosen by the OS) and hands over through
//! the `NGINX` environment variable, nginx's own way of inheriting listening sockets; its
//! files live in a temporary directory. `scripts/test` installs nginx.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Captured;

/// The nginx binary, as Debian installs it.
const NGINX: &str = "/usr/sbin/nginx";

/// A running nginx; stopped when dropped.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    /// The listening socket, kept open so its port stays ours.
    _listener: std::net::TcpListener,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub log: Captured,
}

/// The server block of `docs/operations.md`, as written there.
pub fn documented_server_block() -> String {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md");
    let text = std::fs::read_to_string(&doc).expect("docs/operations.md");
    let start = text
        .find("```nginx\n")
        .expect("an nginx block in docs/operations.md")
        + "```nginx\n".len();
    let end = start
        + text[start..]
            .find("```")
            .expect("the end of the nginx block");
    text[start..end].to_owned()
}

impl Nginx {
    /// Binds a port for nginx (so the controller's `--url` can name it before nginx runs).
    pub fn bind() -> std::net::TcpListener {
        std::net::TcpListener::bind("127.0.0.1:0").expect("binding nginx's port")
    }

    /// Starts nginx on `listener` with the documented server block, proxying to `upstream`
    /// (`host:port`), with `proxy_read_timeout` and `proxy_send_timeout` set to `timeout_s`.
    pub fn start(listener: std::net::TcpListener, upstream: &str, timeout_s: u32) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: run the tests with scripts/test, which installs nginx"
        );
        let addr = listener.local_addr().expect("nginx's address").to_string();
        let dir = tempfile::tempdir().expect("nginx directory");
        let (cert, key) = write_certificate(dir.path());
        let block = documented_server_block();
        let server = block
            .replace("listen 443 ssl;", &format!("listen {addr} ssl;"))
            .replace("/etc/ssl/ci.example.com.pem", &cert.display().to_string())
            .replace("/etc/ssl/ci.example.com.key", &key.display().to_string())
            .replace("http://127.0.0.1:8080", &format!("http://{upstream}"))
            .replace(
                "proxy_read_timeout 120s;",
                &format!("proxy_read_timeout {timeout_s}s;"),
            )
            .replace(
                "proxy_send_timeout 120s;",
                &format!("proxy_send_timeout {timeout_s}s;"),
            );
        for (what, changed) in [
            ("listen", server.contains(&format!("listen {addr}"))),
            ("upstream", server.contains(upstream)),
            (
                "timeouts",
                server.contains(&format!("timeout {timeout_s}s")),
            ),
        ] {
            assert!(
                changed,
                "the documented nginx block changed shape ({what}):\n{block}"
            );
        }
        let d = dir.path().display();
        let config = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\nuser root;\n\
             error_log {d}/error.log info;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{server}\n}}\n"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).expect("writing nginx.conf");
        // nginx takes over listening sockets named in `NGINX` ("fd;fd;…").
        let fd = listener.as_raw_fd();
        // SAFETY: fcntl on a descriptor this process owns; only the close-on-exec flag changes.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            assert!(flags >= 0, "F_GETFD");
            assert!(libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == 0);
        }
        let mut child = Command::new(NGINX)
            // Its own process group, so that the workers go with the master.
            .process_group(0)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .env("NGINX", format!("{fd};"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting nginx");
        let log = Captured::default();
        let _ = log.follow(child.stderr.take().unwrap());
        Nginx {
            child,
            dir,
            _listener: listener,
            addr,
            log,
        }
    }

    /// `https://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("https://{}/", self.addr)
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// How long nginx gets to stop its workers after SIGTERM before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl Drop for Nginx {
    fn drop(&mut self) {
        let group = self.child.id() as libc::pid_t;
        // SAFETY: signals to the process group this harness started nginx in.
        unsafe { libc::kill(-group, libc::SIGTERM) };
        let start = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) && start.elapsed() < STOP_GRACE {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; whatever is left of the group goes.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// A self-signed certificate for `127.0.0.1`, as PEM files in `dir`.
fn write_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("writing the certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("writing the key");
    (cert_path, key_path)
}
