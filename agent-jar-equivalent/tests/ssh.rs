//! The agent's SSH server driven by the real OpenSSH client (`ssh`, `sftp`, `scp`): exit
//! statuses, who may log in, the session's environment, file transfer and forwarding.

mod ssh_support;

use std::io::Write;

use sha2::{Digest, Sha256};
use ssh_support::{Server, output, text};
use steward_protocol::ssh::{BuildSession, SshTarget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread")]
async fn exec_reports_output_and_exit_status() {
    let server = Server::start().await;
    let out = output(&mut server.ssh("anyone", &["echo hello; echo oops >&2; exit 7"])).await;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello\n");
    assert_eq!(text(&out.stderr), "oops\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_session_starts_in_the_work_dir_with_steward_variables() {
    let server = Server::start().await;
    let connection = server.next_connection();
    let script = "pwd; echo $STEWARD_SSH_CONNECTION; echo $STEWARD_AGENT_SOCKET; echo $PATH; command -v breakpoint";
    let out = output(&mut server.ssh("x", &[script])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let work = std::fs::canonicalize(server.work.path()).unwrap();
    let remoting = server.work.path().join("remoting");
    let lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    assert_eq!(std::fs::canonicalize(&lines[0]).unwrap(), work);
    assert_eq!(lines[1], connection.to_string());
    assert_eq!(lines[2], remoting.join("agent.sock").display().to_string());
    let bin = remoting.join("bin");
    assert!(
        lines[3].starts_with(&format!("{}:", bin.display())),
        "{}",
        lines[3]
    );
    assert_eq!(lines[4], bin.join("breakpoint").display().to_string());
    assert_eq!(
        std::fs::read_link(bin.join("breakpoint")).unwrap(),
        std::env::current_exe().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_not_allowed_is_refused() {
    let server = Server::start().await;
    let stranger = ssh_support::ClientKey::new(server.client_dir.path(), "stranger", 9);
    let out = output(&mut server.ssh_with_key(&stranger.file, "x", &["true"])).await;
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("Permission denied (publickey)"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_in_authorized_keys_are_accepted() {
    // The controller passes no key at all.
    let server = Server::start_with(|_, _| {}).await;
    let refused = output(&mut server.ssh("x", &["true"])).await;
    assert_eq!(refused.status.code(), Some(255));
    std::fs::write(
        server.work.path().join(".authorized_keys"),
        format!("# the agent's own\n{} ops@laptop\n", server.key.public),
    )
    .unwrap();
    // Read afresh for each connection.
    let out = output(&mut server.ssh("x", &["echo in"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "in\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_session_has_its_workspace_environment_and_users() {
    let workspace = tempfile::tempdir().unwrap();
    let path = workspace.path().display().to_string();
    let server = Server::start_with(|request, key| {
        request.allowed_keys.push(key.allowed("alice"));
        request.target = SshTarget::Build(BuildSession {
            job: "web".into(),
            number: 7,
            workspace: path.clone(),
            env: vec![
                ("BUILD_NUMBER".into(), "7".into()),
                ("JOB_NAME".into(), "web".into()),
                ("WORKSPACE".into(), path.clone()),
            ],
            allowed_users: vec!["web-7".into()],
        });
    })
    .await;
    let out =
        output(&mut server.ssh("web-7", &["pwd; echo $JOB_NAME $BUILD_NUMBER $WORKSPACE"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let real = std::fs::canonicalize(workspace.path()).unwrap();
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(std::fs::canonicalize(lines[0]).unwrap(), real);
    assert_eq!(lines[1], format!("web 7 {path}"));

    let refused = output(&mut server.ssh("root", &["true"])).await;
    assert_eq!(refused.status.code(), Some(255));
    assert!(text(&refused.stderr).contains("Permission denied"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_killed_by_a_signal_is_reported_as_such() {
    let server = Server::start().await;
    // The client names the requests it receives at -v.
    let mut command = server.ssh_with_options(
        &["-o", "LogLevel=DEBUG1"],
        &server.key.file,
        "x",
        &["kill -TERM $$"],
    );
    let out = output(&mut command).await;
    // OpenSSH exits 255 for a command that died of a signal.
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("rtype exit-signal"),
        "{}",
        text(&out.stderr)
    );
}

/// A file of `len` bytes that no two blocks repeat, and its sha256.
fn big_file(path: &std::path::Path, len: usize) -> String {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hash = Sha256::new();
    let mut block = vec![0u8; 1024 * 1024];
    let mut written = 0;
    let mut counter = 0u64;
    while written < len {
        for (i, chunk) in block.chunks_mut(8).enumerate() {
            let value = counter
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(i as u64);
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        counter += 1;
        let n = block.len().min(len - written);
        file.write_all(&block[..n]).unwrap();
        hash.update(&block[..n]);
        written += n;
    }
    file.flush().unwrap();
    hex::encode(hash.finalize())
}

fn sha256_of(path: &std::path::Path) -> String {
    let mut file = std::fs::File::open(path).unwrap();
    let mut hash = Sha256::new();
    std::io::copy(&mut file, &mut hash).unwrap();
    hex::encode(hash.finalize())
}

#[tokio::test(flavor = "multi_thread")]
async fn sftp_puts_and_gets_a_large_file_intact() {
    let server = Server::start().await;
    let local = server.client_dir.path().join("big");
    // Past 200 MB, and not a multiple of the 32 KiB requests.
    let sum = big_file(&local, 210 * 1024 * 1024 + 12345);
    let back = server.client_dir.path().join("back");
    let batch = server.client_dir.path().join("batch");
    std::fs::write(
        &batch,
        format!(
            "mkdir up\ncd up\nput {} big\nls -l\nget big {}\nrename big moved\nrm moved\ncd ..\nrmdir up\n",
            local.display(),
            back.display()
        ),
    )
    .unwrap();
    let out = output(&mut server.sftp(&batch)).await;
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(sha256_of(&back), sum);
    // Relative paths landed in the work dir, and were cleaned up.
    assert!(!server.work.path().join("up").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn scp_copies_both_ways() {
    let server = Server::start().await;
    let local = server.client_dir.path().join("file");
    let sum = big_file(&local, 3 * 1024 * 1024 + 7);
    let remote = server.work.path().join("copied");
    let out = output(&mut server.scp(&local.display().to_string(), &server.remote(&remote))).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sha256_of(&remote), sum);
    let back = server.client_dir.path().join("back");
    let out = output(&mut server.scp(&server.remote(&remote), &back.display().to_string())).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sha256_of(&back), sum);
}

/// An echo server on a loopback port chosen by the OS.
async fn echo_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            connections.spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_w_reaches_a_port_from_the_agent() {
    let server = Server::start().await;
    let (port, echo) = echo_server().await;
    let mut command = server.ssh("x", &[]);
    command.args(["-W", &format!("127.0.0.1:{port}")]);
    command.stdin(std::process::Stdio::piped());
    command.stdout(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"ping through the agent\n").await.unwrap();
    let mut answer = vec![0u8; 23];
    tokio::time::timeout(ssh_support::DEADLINE, stdout.read_exact(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, b"ping through the agent\n");
    drop(stdin);
    let _ = tokio::time::timeout(ssh_support::DEADLINE, child.wait()).await;
    echo.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_l_forwards_a_local_port_through_the_agent() {
    let server = Server::start().await;
    let (target, echo) = echo_server().await;
    // A free local port: chosen by the OS, then handed to ssh.
    let local = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut command = server.ssh("x", &["-N"]);
    command.args([
        "-L",
        &format!("127.0.0.1:{local}:127.0.0.1:{target}"),
        "-o",
        "ExitOnForwardFailure=yes",
    ]);
    let mut child = command.spawn().unwrap();
    let deadline = tokio::time::Instant::now() + ssh_support::DEADLINE;
    let mut socket = loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", local)).await {
            Ok(socket) => break socket,
            Err(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the forward never listened"
                );
                assert!(child.try_wait().unwrap().is_none(), "ssh -L exited");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    socket.write_all(b"forwarded").await.unwrap();
    let mut answer = [0u8; 9];
    tokio::time::timeout(ssh_support::DEADLINE, socket.read_exact(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&answer, b"forwarded");
    child.kill().await.unwrap();
    echo.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_sessions_run_at_once() {
    let server = Server::start().await;
    let meeting = tempfile::tempdir().unwrap();
    let mut runs = tokio::task::JoinSet::new();
    for n in 0..20 {
        // Each session waits until all twenty have arrived: they run at the same time.
        let script = format!(
            "cd {}; touch s{n}; while [ $(ls | wc -l) -lt 20 ]; do sleep 0.05; done; echo {n}",
            meeting.path().display()
        );
        let mut command = server.ssh("x", &[&script]);
        runs.spawn(async move { (n, output(&mut command).await) });
    }
    while let Some(done) = runs.join_next().await {
        let (n, out) = done.unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{n}\n"));
    }
}

/// Starts `sleep 1000` in the background of a session and returns its pid and the client.
async fn session_with_a_sleeper(server: &Server) -> (i32, tokio::process::Child) {
    let mut command = server.ssh("x", &["sleep 1000 & echo $!; wait"]);
    command.stdout(std::process::Stdio::piped());
    command.stdin(std::process::Stdio::null());
    let mut child = command.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        let n = tokio::time::timeout(ssh_support::DEADLINE, stdout.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "the session ended early");
        line.push(byte[0]);
    }
    let pid: i32 = text(&line).trim().parse().unwrap();
    assert!(ssh_support::running(pid));
    (pid, child)
}

#[tokio::test(flavor = "multi_thread")]
async fn processes_die_when_the_client_goes_away() {
    let server = Server::start().await;
    let (pid, mut client) = session_with_a_sleeper(&server).await;
    client.kill().await.unwrap();
    ssh_support::wait_for("the background process to be killed", || {
        !ssh_support::running(pid)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_a_connection_from_the_agent_ends_its_sessions() {
    let server = Server::start().await;
    let connection = server.next_connection();
    let (pid, mut client) = session_with_a_sleeper(&server).await;
    let sessions = server.context.ssh().sessions();
    assert_eq!(sessions.close_connection(connection + 1000).await, 0);
    assert_eq!(sessions.close_connection(connection).await, 1);
    assert!(!ssh_support::running(pid));
    let status = tokio::time::timeout(ssh_support::DEADLINE, client.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!status.success());
}
