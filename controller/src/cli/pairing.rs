//! The full-duplex CLI's waiting room: download sides waiting for their upload side, by
//! `Session`, each with who it authenticated as and where it came from.
//!
//! A session id is not a secret (a proxy's access log shows it), so the upload side must
//! authenticate as its download side did: [`Principal`] is what the two are compared on.
//!
//! Waiting costs the controller a task and a connection for up to [`PAIRING_TIMEOUT`], so
//! who may wait is bounded. Authenticated download sides share [`MAX_PENDING_SESSIONS`]
//! places, at most [`MAX_PENDING_PER_ADDRESS`] from one address and
//! [`MAX_PENDING_PER_USER`] of one user. Anonymous ones (who may
//! only ask who they are) wait apart, in [`MAX_PENDING_ANONYMOUS`] places of their own, at
//! most [`MAX_PENDING_ANONYMOUS_PER_ADDRESS`] from one address: however many half-open
//! sessions an anonymous client opens, an authenticated user always finds a place. Bad
//! credentials never wait (`duplex` answers them at once).
//!
//! The address is the TCP peer's (an IPv6 address counts by its /64, as for the connection
//! caps). `X-Forwarded-For` is not used: any client can send it, and the controller does
//! not know which peers are proxies. Behind a reverse proxy every client therefore shares
//! the proxy's places; a real client waits one round trip, so they are only ever full
//! under a flood, and a flood of authenticated ones needs valid credentials.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::auth::Identity;
use crate::http::admission::AddressKey;
use crate::http::log_throttle::Throttle;

/// How long a download side waits for its upload side. A real client (ours,
/// jenkins-cli.jar) opens the upload as soon as it reads the download's first byte: one new
/// connection (TCP and TLS handshakes, three round trips) and a request head. 5 s covers
/// round trips of over a second, and frees the place of a client that never comes three
/// times sooner than Jenkins' 15 s.
pub const PAIRING_TIMEOUT: Duration = Duration::from_secs(5);
/// Authenticated download sides waiting at once; more get 503, so half-open sessions
/// cannot grow memory.
pub const MAX_PENDING_SESSIONS: usize = 256;
/// Authenticated download sides waiting at once from one address: a build farm starting
/// CLI commands in bursts pairs each within a round trip; one client holding more is
/// opening sessions it does not complete.
pub const MAX_PENDING_PER_ADDRESS: usize = 16;
/// Download sides one user may have waiting at once, from all addresses together: four
/// addresses' worth, for a user whose builds run CLI commands from many machines; the
/// credentials of any one user, even a read-only one, can never take the places of
/// everyone else.
pub const MAX_PENDING_PER_USER: usize = 64;
/// Anonymous download sides waiting at once, apart from the authenticated ones: anonymous
/// may only run `who-am-i`, so a small pool serves it, and a flood of them never takes an
/// authenticated user's place.
pub const MAX_PENDING_ANONYMOUS: usize = 32;
/// Anonymous download sides waiting at once from one address, so one anonymous client
/// cannot take the whole anonymous pool.
pub const MAX_PENDING_ANONYMOUS_PER_ADDRESS: usize = 4;

/// Who a side authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    User(String),
}

impl Principal {
    pub fn of(identity: &Identity) -> Principal {
        match identity {
            Identity::Anonymous(_) => Principal::Anonymous,
            Identity::User(user) => Principal::User(user.name.clone()),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Anonymous => f.write_str("anonymous"),
            Principal::User(name) => f.write_str(name),
        }
    }
}

/// Why a download side may not wait, as its 503 (or 400) says it, on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitRefusal {
    Duplicate,
    Full,
    AddressFull(AddressKey),
    UserFull(String),
    AnonymousFull,
    AnonymousAddressFull(AddressKey),
}

impl fmt::Display for WaitRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitRefusal::Duplicate => f.write_str("Duplicate CLI session"),
            WaitRefusal::Full => write!(
                f,
                "Too many CLI sessions waiting for their upload side (the limit is {MAX_PENDING_SESSIONS})"
            ),
            WaitRefusal::AddressFull(address) => write!(
                f,
                "Too many CLI sessions from {address} waiting for their upload side (the limit is {MAX_PENDING_PER_ADDRESS} per address)"
            ),
            WaitRefusal::UserFull(user) => write!(
                f,
                "Too many CLI sessions of {} waiting for their upload side (the limit is {MAX_PENDING_PER_USER} per user)",
                steward_protocol::shown::Shown(user)
            ),
            WaitRefusal::AnonymousFull => write!(
                f,
                "Too many anonymous CLI sessions waiting for their upload side (the limit is {MAX_PENDING_ANONYMOUS}; authenticated sessions are not affected)"
            ),
            WaitRefusal::AnonymousAddressFull(address) => write!(
                f,
                "Too many anonymous CLI sessions from {address} waiting for their upload side (the limit is {MAX_PENDING_ANONYMOUS_PER_ADDRESS} per address)"
            ),
        }
    }
}

/// A download side waiting: where its upload goes, who it is, where it came from.
struct Waiting<T> {
    handoff: oneshot::Sender<T>,
    principal: Principal,
    address: AddressKey,
}

struct Table<T> {
    waiting: HashMap<String, Waiting<T>>,
    /// Refusals are logged at most once a second, with their count.
    refusals: Throttle,
}

/// Download sides waiting for their upload side; `T` is what an upload hands over.
pub struct PendingDuplex<T> {
    table: Mutex<Table<T>>,
}

impl<T> Default for PendingDuplex<T> {
    fn default() -> Self {
        PendingDuplex {
            table: Mutex::new(Table {
                waiting: HashMap::new(),
                refusals: Throttle::default(),
            }),
        }
    }
}

/// What [`PendingDuplex::take`] found.
#[derive(Debug)]
pub enum Take<T> {
    /// The download side, taken: where its upload goes.
    Taken(oneshot::Sender<T>),
    /// No download side waits under this id.
    Unknown,
    /// One waits, authenticated as `expected`, not as the upload.
    Mismatch { expected: Principal },
}

impl<T> PendingDuplex<T> {
    fn lock(&self) -> MutexGuard<'_, Table<T>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a place for the download side of `session`, authenticated as `principal`, from
    /// `ip`; its upload arrives on the receiver.
    pub fn wait(
        &self,
        session: &str,
        principal: Principal,
        ip: IpAddr,
    ) -> Result<oneshot::Receiver<T>, WaitRefusal> {
        let address = AddressKey::of(ip);
        let mut table = self.lock();
        let refusal = table.refusal(session, &principal, address);
        if let Some(refusal) = refusal {
            if let Some(count) = table.refusals.note(Instant::now()) {
                tracing::warn!(%address, user = ?principal.to_string(), refused = count, reason = %refusal, "refused CLI download sides");
            }
            return Err(refusal);
        }
        let (handoff, receiver) = oneshot::channel();
        table.waiting.insert(
            session.to_owned(),
            Waiting {
                handoff,
                principal,
                address,
            },
        );
        Ok(receiver)
    }

    /// Takes the download side of `session` out of the waiting room, if it authenticated
    /// as `principal`: where its upload goes. A download side that authenticated otherwise
    /// stays waiting for its own client's upload (`Mismatch`): an upload from whoever saw
    /// the session id neither runs nor ends the session.
    pub fn take(&self, session: &str, principal: Option<&Principal>) -> Take<T> {
        let mut table = self.lock();
        match table.waiting.get(session) {
            None => Take::Unknown,
            Some(w) if Some(&w.principal) != principal => Take::Mismatch {
                expected: w.principal.clone(),
            },
            Some(_) => match table.waiting.remove(session) {
                Some(w) => Take::Taken(w.handoff),
                None => Take::Unknown,
            },
        }
    }

    /// Gives up the place of `session` once its download side stopped waiting (its receiver
    /// is dropped); a newer download side under the same id keeps its place.
    pub fn forget(&self, session: &str) {
        let mut table = self.lock();
        if table
            .waiting
            .get(session)
            .is_some_and(|w| w.handoff.is_closed())
        {
            table.waiting.remove(session);
        }
    }

    /// Number of download sides waiting now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }
}

impl<T> Table<T> {
    /// Why `principal` from `address` may not wait now, if it may not.
    fn refusal(
        &self,
        session: &str,
        principal: &Principal,
        address: AddressKey,
    ) -> Option<WaitRefusal> {
        if self.waiting.contains_key(session) {
            return Some(WaitRefusal::Duplicate);
        }
        let anonymous = *principal == Principal::Anonymous;
        let (mut in_pool, mut from_address, mut of_user) = (0, 0, 0);
        for w in self.waiting.values() {
            if (w.principal == Principal::Anonymous) == anonymous {
                in_pool += 1;
                from_address += usize::from(w.address == address);
                of_user += usize::from(w.principal == *principal);
            }
        }
        match anonymous {
            true if in_pool >= MAX_PENDING_ANONYMOUS => Some(WaitRefusal::AnonymousFull),
            true if from_address >= MAX_PENDING_ANONYMOUS_PER_ADDRESS => {
                Some(WaitRefusal::AnonymousAddressFull(address))
            }
            false if in_pool >= MAX_PENDING_SESSIONS => Some(WaitRefusal::Full),
            false if from_address >= MAX_PENDING_PER_ADDRESS => {
                Some(WaitRefusal::AddressFull(address))
            }
            false if of_user >= MAX_PENDING_PER_USER => {
                Some(WaitRefusal::UserFull(principal.to_string()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn admin() -> Principal {
        Principal::User("admin".into())
    }

    #[test]
    fn anonymous_sides_never_take_an_authenticated_place() {
        let pending = PendingDuplex::<()>::default();
        let mut held = Vec::new();
        let mut refused = Vec::new();
        for i in 0..1000u32 {
            let from = ip((i % 250) as u8);
            match pending.wait(&format!("a{i}"), Principal::Anonymous, from) {
                Ok(rx) => held.push(rx),
                Err(refusal) => refused.push(refusal),
            }
        }
        assert_eq!(held.len(), MAX_PENDING_ANONYMOUS);
        assert!(refused.iter().all(|r| *r == WaitRefusal::AnonymousFull));
        // Every authenticated place is still there (taken by several users, each within
        // their own share).
        for i in 0..MAX_PENDING_SESSIONS {
            let from = ip((i / MAX_PENDING_PER_ADDRESS) as u8);
            let user = Principal::User(format!("user{}", i / MAX_PENDING_PER_USER));
            held.push(pending.wait(&format!("u{i}"), user, from).unwrap());
        }
        assert_eq!(
            pending.wait("one-more", admin(), ip(200)).unwrap_err(),
            WaitRefusal::Full
        );
        assert_eq!(
            pending.waiting(),
            MAX_PENDING_ANONYMOUS + MAX_PENDING_SESSIONS
        );
    }

    #[test]
    fn each_pool_is_capped_per_address() {
        let pending = PendingDuplex::<()>::default();
        let mut held = Vec::new();
        for i in 0..MAX_PENDING_ANONYMOUS_PER_ADDRESS {
            held.push(
                pending
                    .wait(&format!("a{i}"), Principal::Anonymous, ip(1))
                    .unwrap(),
            );
        }
        assert_eq!(
            pending
                .wait("a-more", Principal::Anonymous, ip(1))
                .unwrap_err(),
            WaitRefusal::AnonymousAddressFull(AddressKey::of(ip(1)))
        );
        // The address's authenticated places are apart from its anonymous ones.
        for i in 0..MAX_PENDING_PER_ADDRESS {
            held.push(pending.wait(&format!("u{i}"), admin(), ip(1)).unwrap());
        }
        let refusal = pending.wait("u-more", admin(), ip(1)).unwrap_err();
        assert_eq!(refusal, WaitRefusal::AddressFull(AddressKey::of(ip(1))));
        assert!(refusal.to_string().contains("from 10.0.0.1"), "{refusal}");
        assert!(pending.wait("elsewhere", admin(), ip(2)).is_ok());
        // A place given up is free again.
        assert!(matches!(pending.take("u0", Some(&admin())), Take::Taken(_)));
        assert!(pending.wait("u-again", admin(), ip(1)).is_ok());
    }

    #[test]
    fn a_session_id_waits_once_and_is_forgotten_only_by_its_own_side() {
        let pending = PendingDuplex::<()>::default();
        let first = pending.wait("s", admin(), ip(1)).unwrap();
        assert_eq!(
            pending.wait("s", admin(), ip(1)).unwrap_err(),
            WaitRefusal::Duplicate
        );
        // Still waiting: forgetting it does nothing.
        pending.forget("s");
        assert_eq!(pending.waiting(), 1);
        drop(first);
        pending.forget("s");
        assert_eq!(pending.waiting(), 0);
        // A newer side under the same id is not forgotten for the older one.
        let _second = pending.wait("s", admin(), ip(1)).unwrap();
        pending.forget("s");
        assert_eq!(pending.waiting(), 1);
        assert!(matches!(pending.take("s", Some(&admin())), Take::Taken(_)));
        assert!(matches!(pending.take("s", Some(&admin())), Take::Unknown));
    }

    #[test]
    fn one_user_cannot_take_every_place_from_many_addresses() {
        let pending = PendingDuplex::<()>::default();
        let mallory = Principal::User("mallory".into());
        let mut held = Vec::new();
        for i in 0..MAX_PENDING_PER_USER {
            let from = ip((i / MAX_PENDING_PER_ADDRESS) as u8);
            held.push(
                pending
                    .wait(&format!("m{i}"), mallory.clone(), from)
                    .unwrap(),
            );
        }
        assert_eq!(
            pending
                .wait("m-more", mallory.clone(), ip(200))
                .unwrap_err(),
            WaitRefusal::UserFull("mallory".into())
        );
        assert!(pending.wait("a", admin(), ip(200)).is_ok());
    }

    #[test]
    fn an_upload_under_other_credentials_neither_takes_nor_ends_the_session() {
        let pending = PendingDuplex::<()>::default();
        let _waiting = pending.wait("s", admin(), ip(1)).unwrap();
        let alice = Principal::User("alice".into());
        for upload in [None, Some(&Principal::Anonymous), Some(&alice)] {
            assert!(
                matches!(pending.take("s", upload), Take::Mismatch { ref expected } if *expected == admin()),
                "{upload:?}"
            );
            assert_eq!(pending.waiting(), 1);
        }
        assert!(matches!(pending.take("s", Some(&admin())), Take::Taken(_)));
    }
}
