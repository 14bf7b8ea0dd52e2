//! `controller`: parse options, set up logging, run until SIGINT/SIGTERM.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use steward_controller::builds::DEFAULT_RECONNECT_GRACE;
use steward_controller::config::{self, Config};
use steward_controller::home::INITIAL_ADMIN_TOKEN_FILE;
use steward_controller::http::guard::DEFAULT_BODY_READ_TIMEOUT;
use steward_controller::http::server::DEFAULT_HEADER_READ_TIMEOUT;
use tokio_util::sync::CancellationToken;

/// Steward controller: a Jenkins-compatible CI controller whose agents dial in over WebSocket.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Options {
    /// Home directory holding the database and secrets.
    #[arg(long, env = "STEWARD_HOME", default_value = "./steward-home")]
    home: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "STEWARD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Public root URL (behind a reverse proxy); default http://<listen>/.
    #[arg(long, env = "STEWARD_URL")]
    url: Option<String>,
    /// Seconds between WebSocket pings; 0 disables.
    #[arg(long, env = "STEWARD_WS_PING_INTERVAL", default_value_t = 30)]
    ws_ping_interval: u64,
    /// Seconds of silence after which a WebSocket is closed; 0 disables.
    #[arg(long, env = "STEWARD_WS_IDLE_TIMEOUT", default_value_t = 60)]
    ws_idle_timeout: u64,
    /// Seconds a client has to send a complete HTTP request head before its connection is
    /// closed (also the idle limit of keep-alive connections between requests).
    #[arg(long, env = "STEWARD_HTTP_HEADER_TIMEOUT", default_value_t = DEFAULT_HEADER_READ_TIMEOUT.as_secs())]
    http_header_timeout: u64,
    /// Seconds a client has to send a whole request body to the REST API (a job's
    /// config.xml, a form); a slower one gets 408.
    #[arg(long, env = "STEWARD_HTTP_BODY_TIMEOUT", default_value_t = DEFAULT_BODY_READ_TIMEOUT.as_secs())]
    http_body_timeout: u64,
    /// Turn off the WebSocket CLI endpoint (/cli/ws); CLIs then use full-duplex HTTP.
    #[arg(long, env = "STEWARD_NO_WEBSOCKET_CLI")]
    no_websocket_cli: bool,
    /// The agent executable served at /jnlpJars/agent (default: `agent` beside this binary).
    #[arg(long, env = "STEWARD_AGENT_BINARY")]
    agent_binary: Option<PathBuf>,
    /// Seconds a running build waits for its agent to reconnect after the connection is
    /// lost; the step goes on meanwhile on the agent. Past it the build fails.
    #[arg(long, env = "STEWARD_BUILD_RECONNECT_GRACE", default_value_t = DEFAULT_RECONNECT_GRACE.as_secs())]
    build_reconnect_grace: u64,
    /// Refuse jobs holding elements Steward does not act on (SCM, triggers, publishers,
    /// build wrappers, steps other than shell), instead of warning about them.
    #[arg(long, env = "STEWARD_STRICT_JOBS")]
    strict_jobs: bool,
    /// A file holding the secret GitHub signs webhook deliveries with
    /// (`X-Hub-Signature-256`); without one, `POST /github-webhook/` refuses every delivery.
    #[arg(long, env = "STEWARD_GITHUB_WEBHOOK_SECRET_FILE")]
    github_webhook_secret_file: Option<PathBuf>,
    /// The settings file (terminal log outputs); default HOME/settings.json.
    #[arg(long, env = "STEWARD_SETTINGS")]
    settings: Option<PathBuf>,
    /// Seconds an on-demand terminal runs on after its last client detached.
    #[arg(long, env = "STEWARD_TERMINAL_ONDEMAND_IDLE", default_value_t = steward_controller::terminals::runner::ONDEMAND_IDLE.as_secs())]
    terminal_ondemand_idle: u64,
    /// Most connections held at once; more are answered 503 at once. Default: the open-file
    /// limit less a quarter of it (at least 128, at most 1024) kept for files.
    #[arg(long, env = "STEWARD_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Most connections from one address (IPv6: one /64). Default: 90% of
    /// --max-connections, not applied to loopback (a reverse proxy on the same host);
    /// given, it applies to every address.
    #[arg(long, env = "STEWARD_MAX_CONNECTIONS_PER_ADDRESS")]
    max_connections_per_address: Option<usize>,
    /// How long audit log entries are kept (30d, 12h…); older ones are pruned as new ones
    /// come.
    #[arg(long, env = "STEWARD_AUDIT_RETENTION", default_value = "90d", value_parser = audit_retention)]
    audit_retention: Duration,
    /// Most audit log entries kept; the oldest go first.
    #[arg(long, env = "STEWARD_AUDIT_MAX_ENTRIES", default_value_t = steward_controller::audit::writer::DEFAULT_MAX_ENTRIES)]
    audit_max_entries: u64,
}

fn audit_retention(text: &str) -> Result<Duration, String> {
    steward_protocol::duration::parse_duration(text).map_err(|e| e.to_string())
}

fn seconds(n: u64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(n))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    steward_channel::allocator::keep_freed_memory();
    // Everything the controller writes (the database, consoles, artifacts, secrets) is its
    // own: private whatever the umask it was started with.
    // SAFETY: umask(2) only sets this process's file mode mask.
    unsafe { libc::umask(0o077) };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let options = Options::parse();
    let mut config = Config::new(options.home, options.listen);
    if let Some(url) = &options.url {
        config.root_url = config::parse_root_url(url).map_err(anyhow::Error::msg)?;
        config.root_url_given = true;
    } else if options.listen.ip().is_unspecified() {
        tracing::warn!(
            "listening on {} without --url: JNLP documents and printed agent commands will name {}; pass --url with the address agents use",
            options.listen,
            config.root_url
        );
    }
    config.ws_ping_interval = seconds(options.ws_ping_interval);
    config.ws_idle_timeout = seconds(options.ws_idle_timeout);
    config.http_header_timeout = Duration::from_secs(options.http_header_timeout);
    config.http_body_timeout = Duration::from_secs(options.http_body_timeout);
    config.websocket_cli = !options.no_websocket_cli;
    config.agent_binary = options.agent_binary;
    config.build_reconnect_grace = Duration::from_secs(options.build_reconnect_grace);
    config.terminal_ondemand_idle = Duration::from_secs(options.terminal_ondemand_idle);
    config.settings_file = options.settings;
    config.strict_jobs = options.strict_jobs;
    if let Some(path) = &options.github_webhook_secret_file {
        let secret = std::fs::read(path)
            .with_context(|| format!("reading the GitHub webhook secret {}", path.display()))?;
        config.github_webhook_secret =
            Some(config::webhook_secret(secret).map_err(|e| {
                anyhow::anyhow!("the GitHub webhook secret {}: {e}", path.display())
            })?);
    }
    config.max_connections = options.max_connections;
    config.max_connections_per_address = options.max_connections_per_address;
    config.audit_retention = steward_controller::audit::Retention {
        max_age: options.audit_retention,
        max_entries: options.audit_max_entries,
    };
    config.validate().map_err(anyhow::Error::msg)?;

    let shutdown = CancellationToken::new();
    let mut started = steward_controller::start(config, shutdown.clone())
        .await
        .context("starting the controller")?;
    println!(
        "Steward controller {} listening on {}",
        steward_protocol::STEWARD_VERSION,
        started.local_addr
    );
    println!("Root URL: {}", started.root_url);
    if let Some(token) = &started.initial_admin_token {
        let file = started.home.secret_file(INITIAL_ADMIN_TOKEN_FILE);
        // Not a terminal, stdout is a log file or a journal, kept longer and read by more
        // people than the token is meant for: say where it is instead.
        if std::io::stdout().is_terminal() {
            println!(
                "Created user 'admin'. Its API token, shown only now (also in {}):",
                file.display()
            );
            println!("    {token}");
            println!(
                "Try: cli -s {} -auth admin:{token} who-am-i",
                started.root_url
            );
        } else {
            println!(
                "Created user 'admin'. Its API token is in {} (readable by this user only; shown here only when stdout is a terminal)",
                file.display()
            );
        }
    }
    // SIGHUP: the terminals' console.log files are reopened (after logrotate moved them).
    let terminals = started.state().terminals.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reopening the terminals' log files");
            terminals.logs().reopen();
        }
    });
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
    // `restart` runs this binary again in place once the server has stopped.
    let handover = started.handover();
    started.wait().await?;
    handover
        .finish()
        .context("running the controller again for a restart")
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
