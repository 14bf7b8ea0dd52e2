//! Connection caps: the most connections the controller holds at once, in total
//! (`--max-connections`) and from one address (`--max-connections-per-address`). A
//! connection past a cap is answered `503 Service Unavailable` at once and closed, so its
//! client learns why and retries later, instead of waiting in the kernel's accept queue for
//! a descriptor the controller does not have.
//!
//! The total defaults to what the open-file limit leaves once descriptors are kept for the
//! controller's files ([`default_max_connections`]). The per-address cap defaults to
//! [`PER_ADDRESS_DEFAULT_PERCENT`] of the total and is then not applied to loopback: behind
//! a reverse proxy on the same host every client arrives from `127.0.0.1` or `::1`, and a
//! fleet of 10,000 agents behind one proxy must fit. Given explicitly, it applies to every
//! address. An IPv6 address counts by its /64, the block one host or one site is given.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::fd_limit::OpenFileLimit;

/// Descriptors kept for files, as a share of the open-file limit (one in this many): the
/// database, the console of every running build, consoles being read, agent binaries being
/// served, and refusals in flight all need one besides the connections.
pub const RESERVED_FDS_DIVISOR: u64 = 4;
/// Fewest descriptors kept for files: the runtime, the listener, the database and its
/// journal, [`MAX_REFUSALS_IN_FLIGHT`] and a few running builds, under a tiny limit.
pub const MIN_RESERVED_FDS: u64 = 128;
/// Most descriptors kept for files: a quarter of a large limit would idle; with this many,
/// a hard limit of the fleet size plus about 1,000 still takes the whole fleet.
pub const MAX_RESERVED_FDS: u64 = 1024;
/// Soft open-file limit assumed when it cannot be read: the common default.
pub const ASSUMED_FD_LIMIT: u64 = 1024;
/// The default per-address cap, in percent of the total: a NAT in front of a whole fleet
/// still fits, and one runaway host leaves a tenth of the room for everyone else (an
/// administrator's CLI among them).
pub const PER_ADDRESS_DEFAULT_PERCENT: usize = 90;
/// `Retry-After` of a refusal: agents retry on their own backoff (up to 10 s) anyway; a
/// few seconds lets idle connections reach the header timeout or finish.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long a refused connection is kept to send its answer and read what the client sent,
/// so closing it does not reset the connection before the client has read the answer.
pub const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// Refusals lingering at once; past it a refusal's answer is written without waiting and
/// the connection closed at once, so a flood costs at most this many descriptors.
pub const MAX_REFUSALS_IN_FLIGHT: usize = 32;
/// Bytes of a refused client's request read (and dropped) per read while lingering.
const DRAIN_BUFFER: usize = 4096;

/// The default `--max-connections` under a soft open-file limit of `soft`.
pub fn default_max_connections(soft: u64) -> usize {
    let reserved = (soft / RESERVED_FDS_DIVISOR).clamp(MIN_RESERVED_FDS, MAX_RESERVED_FDS);
    usize::try_from(soft.saturating_sub(reserved))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// The caps in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub total: usize,
    pub per_address: usize,
    /// Whether loopback addresses escape the per-address cap (only when it was not given).
    pub loopback_exempt: bool,
}

impl Caps {
    /// The caps from the options (`None`: the default) and the soft open-file limit.
    pub fn new(total: Option<usize>, per_address: Option<usize>, soft_fd_limit: u64) -> Caps {
        let total = total.unwrap_or_else(|| default_max_connections(soft_fd_limit));
        match per_address {
            Some(per_address) => Caps {
                total,
                per_address,
                loopback_exempt: false,
            },
            None => Caps {
                total,
                // The percentage, without overflowing for a huge total.
                per_address: (total / 100 * PER_ADDRESS_DEFAULT_PERCENT
                    + total % 100 * PER_ADDRESS_DEFAULT_PERCENT / 100)
                    .max(1),
                loopback_exempt: true,
            },
        }
    }

    /// The caps `config` asks for under `fd_limit` (the limit as raised at start-up), logged.
    /// Warns when the total leaves fewer than [`MIN_RESERVED_FDS`] descriptors for files.
    pub fn for_config(config: &Config, fd_limit: Option<OpenFileLimit>) -> Caps {
        let soft = fd_limit.map_or(ASSUMED_FD_LIMIT, |limit| limit.soft);
        let caps = Caps::new(
            config.max_connections,
            config.max_connections_per_address,
            soft,
        );
        tracing::info!(
            max_connections = caps.total,
            max_connections_per_address = caps.per_address,
            loopback_exempt = caps.loopback_exempt,
            "connection caps"
        );
        let total = u64::try_from(caps.total).unwrap_or(u64::MAX);
        if total.saturating_add(MIN_RESERVED_FDS) > soft {
            tracing::warn!(
                "{} connections leave fewer than {MIN_RESERVED_FDS} of the {soft} open files allowed for the controller's own files: accepting or opening files may fail with 'Too many open files' before the cap refuses anyone; raise the open-file limit (LimitNOFILE=) or lower --max-connections",
                caps.total
            );
        }
        caps
    }
}

/// What the per-address cap counts by: an IPv4 address, or an IPv6 address's /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    pub fn of(ip: IpAddr) -> AddressKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => AddressKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !(u128::MAX >> 64);
                AddressKey(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
        }
    }
}

impl fmt::Display for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Total { limit: usize },
    PerAddress { address: AddressKey, limit: usize },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Total { limit } => write!(
                f,
                "too many connections: the controller holds its limit of {limit} (--max-connections)"
            ),
            Refusal::PerAddress { address, limit } => write!(
                f,
                "too many connections from {address}: the limit is {limit} per address (--max-connections-per-address)"
            ),
        }
    }
}

/// A complete `503` answer whose body is `reason`, one line, and then a close.
pub fn unavailable_response(reason: &str) -> Vec<u8> {
    let body = format!("{reason}; retry later\n");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nRetry-After: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
        RETRY_AFTER.as_secs()
    )
    .into_bytes()
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_address: HashMap<AddressKey, usize>,
}

/// Counts open connections against the [`Caps`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Admission {
    caps: Caps,
    counts: Arc<Mutex<Counts>>,
}

/// An admitted connection's place in the counts, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    address: Option<AddressKey>,
}

impl Admission {
    pub fn new(caps: Caps) -> Admission {
        Admission {
            caps,
            counts: Arc::default(),
        }
    }

    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// Takes a place for a connection from `ip`, or says which cap it is past.
    pub fn admit(&self, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.total >= self.caps.total {
            return Err(Refusal::Total {
                limit: self.caps.total,
            });
        }
        let exempt = self.caps.loopback_exempt && ip.to_canonical().is_loopback();
        let address = (!exempt).then(|| AddressKey::of(ip));
        if let Some(address) = address {
            let held = counts.by_address.entry(address).or_default();
            if *held >= self.caps.per_address {
                return Err(Refusal::PerAddress {
                    address,
                    limit: self.caps.per_address,
                });
            }
            *held += 1;
        }
        counts.total += 1;
        Ok(Slot {
            counts: self.counts.clone(),
            address,
        })
    }

    /// Connections held now.
    pub fn open(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total -= 1;
        if let Some(address) = self.address
            && let Some(held) = counts.by_address.get_mut(&address)
        {
            *held -= 1;
            if *held == 0 {
                counts.by_address.remove(&address);
            }
        }
    }
}

/// An admitted connection's socket, holding its [`Slot`] for as long as the socket lives:
/// through the HTTP connection and, after an upgrade, the WebSocket that takes the socket
/// over.
pub struct Admitted<S> {
    inner: S,
    _slot: Slot,
}

impl<S> Admitted<S> {
    pub fn new(inner: S, slot: Slot) -> Self {
        Admitted { inner, _slot: slot }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Admitted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Answers refused connections without ever making the accept loop wait.
#[derive(Debug, Clone)]
pub struct Refuser {
    lingering: Arc<Semaphore>,
}

impl Default for Refuser {
    fn default() -> Self {
        Refuser {
            lingering: Arc::new(Semaphore::new(MAX_REFUSALS_IN_FLIGHT)),
        }
    }
}

impl Refuser {
    /// Sends `tcp` the `503` for `refusal` and closes it: in a task on `tasks` that lingers
    /// at most [`REFUSAL_LINGER`], or, with [`MAX_REFUSALS_IN_FLIGHT`] already lingering,
    /// by writing what the socket takes at once and closing it straight away.
    pub fn refuse(&self, tcp: TcpStream, refusal: &Refusal, tasks: &TaskTracker) {
        let response = unavailable_response(&refusal.to_string());
        let Ok(permit) = self.lingering.clone().try_acquire_owned() else {
            // A fresh socket's send buffer is empty: the answer fits without waiting.
            let _ = tcp.try_write(&response);
            return;
        };
        tasks.spawn(async move {
            let _ = tokio::time::timeout(REFUSAL_LINGER, linger(tcp, &response)).await;
            drop(permit);
        });
    }
}

/// Writes `response`, ends the sending side, and reads until the client closes, so the
/// close that follows does not reset the connection under an answer not yet read.
async fn linger(mut tcp: TcpStream, response: &[u8]) {
    if tcp.write_all(response).await.is_err() || tcp.shutdown().await.is_err() {
        return;
    }
    let mut buffer = [0u8; DRAIN_BUFFER];
    while matches!(tcp.read(&mut buffer).await, Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_default_total_keeps_descriptors_for_files() {
        // systemd's soft limit: a quarter kept.
        assert_eq!(default_max_connections(1024), 768);
        // A tiny limit keeps the minimum.
        assert_eq!(default_max_connections(256), 128);
        // A large one keeps at most MAX_RESERVED_FDS: 10,000 agents fit under 11,024.
        assert_eq!(default_max_connections(11_024), 10_000);
        assert_eq!(default_max_connections(524_288), 523_264);
        // Below the reserve there is still room for one connection.
        assert_eq!(default_max_connections(100), 1);
        // An unlimited soft limit (RLIM_INFINITY) does not overflow.
        assert!(default_max_connections(u64::MAX) > 1_000_000);
    }

    #[test]
    fn the_default_per_address_cap_is_most_of_the_total_and_spares_loopback() {
        let caps = Caps::new(None, None, 1024);
        assert_eq!(
            caps,
            Caps {
                total: 768,
                per_address: 691,
                loopback_exempt: true
            }
        );
        assert_eq!(Caps::new(Some(1), None, 1024).per_address, 1);
        let given = Caps::new(Some(100), Some(10), 1024);
        assert_eq!(
            given,
            Caps {
                total: 100,
                per_address: 10,
                loopback_exempt: false
            }
        );
    }

    #[test]
    fn the_total_cap_refuses_past_it_and_a_dropped_slot_makes_room() {
        let admission = Admission::new(Caps::new(Some(3), None, 1024));
        let slots: Vec<Slot> = ["10.0.0.1", "10.0.0.2", "127.0.0.1"]
            .into_iter()
            .map(|a| admission.admit(ip(a)).unwrap())
            .collect();
        assert_eq!(
            admission.admit(ip("10.0.0.3")).unwrap_err(),
            Refusal::Total { limit: 3 }
        );
        assert_eq!(admission.open(), 3);
        drop(slots);
        assert_eq!(admission.open(), 0);
        assert!(admission.admit(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn the_per_address_cap_counts_each_address_and_loopback_only_when_given() {
        let default = Admission::new(Caps {
            total: 100,
            per_address: 2,
            loopback_exempt: true,
        });
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(default.admit(ip("192.0.2.7")).unwrap());
        }
        assert_eq!(
            default.admit(ip("192.0.2.7")).unwrap_err(),
            Refusal::PerAddress {
                address: AddressKey::of(ip("192.0.2.7")),
                limit: 2
            }
        );
        // The same address seen through a dual-stack socket is the same address.
        assert!(default.admit(ip("::ffff:192.0.2.7")).is_err());
        held.push(default.admit(ip("192.0.2.8")).unwrap());
        for _ in 0..5 {
            held.push(default.admit(ip("127.0.0.1")).unwrap());
            held.push(default.admit(ip("::1")).unwrap());
        }
        held.pop();
        held.clear();
        assert!(default.admit(ip("192.0.2.7")).is_ok());

        let given = Admission::new(Caps::new(Some(100), Some(2), 1024));
        let _a = given.admit(ip("127.0.0.1")).unwrap();
        let _b = given.admit(ip("127.0.0.1")).unwrap();
        assert!(given.admit(ip("127.0.0.1")).is_err());
    }

    #[test]
    fn ipv6_counts_by_its_64() {
        let admission = Admission::new(Caps::new(Some(100), Some(2), 1024));
        let _a = admission.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = admission.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        let refusal = admission.admit(ip("2001:db8:1:2::3")).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "too many connections from 2001:db8:1:2::/64: the limit is 2 per address (--max-connections-per-address)"
        );
        assert!(admission.admit(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn the_refusal_is_a_complete_503_that_closes() {
        let response = unavailable_response(&Refusal::Total { limit: 7 }.to_string());
        let text = String::from_utf8(response).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains("\r\nConnection: close"));
        assert!(head.contains("\r\nRetry-After: 5"));
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
        assert_eq!(
            body,
            "too many connections: the controller holds its limit of 7 (--max-connections); retry later\n"
        );
    }
}
