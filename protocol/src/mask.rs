//! Secret masking for build consoles: each secret a build binds is written `****`, as the
//! Jenkins credentials-binding plugin writes it.
//!
//! - **Matching.** At each position the longest secret that starts there is masked, and
//!   matching goes on after it: Jenkins builds one regular expression of the quoted secrets,
//!   longest first, so of two secrets that start at the same byte the longer wins (`android`
//!   and `androiddebugkey` mask `androiddebugkey` whole). Empty secrets are ignored.
//! - **Streaming.** Output comes in chunks of any size; a secret may arrive a byte at a time
//!   or split across chunks. [`Masker::feed`] writes out every byte that can no longer be part
//!   of a secret and holds back the rest, at most the longest secret's length less one (for a
//!   multi-line secret, its CR LF form's) ([`Masker::held`]); [`Masker::finish`] writes out
//!   what is held at the end of the stream.
//!   The output is a function of the bytes fed, however they were split. It is not a
//!   function of a chunk alone: a masker that resumes a stream (a controller restarted
//!   mid-build) must be fed it again from its start, or the end of a secret whose beginning
//!   it did not see goes through.
//! - **Multi-line secrets.** Jenkins masks line by line, so a secret holding a line feed (a
//!   private key, a JSON key file) is never masked there; its documentation says so. Steward
//!   masks such a secret whole, also without its final line end and with each line feed
//!   written as CR LF (as a terminal shows it), and masks each of its lines of at least
//!   [`MIN_MASKED_LINE_LEN`] bytes, so `head -3 key.pem` is masked too. Longest first, a whole
//!   key is one `****`.
//! - **Not done.** Jenkins also masks encoded forms of each secret (base64, shell-quoted as
//!   `bash -x` prints it); Steward masks the bytes of the secret as bound.
//! - **Cost.** Masking runs an Aho-Corasick automaton (`automaton`): constant work per
//!   byte for secrets that are not pathological repetitions, and memory in proportion to the
//!   secrets' length, bounded by [`MAX_SECRETS`], [`MAX_SECRET_LEN`] and
//!   [`MAX_TOTAL_SECRET_BYTES`].

mod automaton;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, VecDeque};

use automaton::{Automaton, ROOT, StateId};

/// What a secret is written as.
pub const MASK: &[u8] = b"****";
/// Most secrets one masker takes. A build binds a handful of credentials, each one to three
/// secrets; the bound keeps the automaton small.
pub const MAX_SECRETS: usize = 64;
/// Longest secret a masker takes: above any key or token (an 8192-bit RSA key is about
/// 6.5 KiB), and what a credential's secret text may be.
pub const MAX_SECRET_LEN: usize = 64 * 1024;
/// Most bytes of secrets in all. The automaton takes about 30 bytes per byte of pattern and
/// a secret makes up to about three times its length in patterns: this bounds a masker at
/// about 12 MiB, where real ones take a few hundred KiB.
pub const MAX_TOTAL_SECRET_BYTES: usize = 128 * 1024;
/// Shortest line of a multi-line secret masked on its own. Shorter lines (`}`, a blank line,
/// `-----END-----` pieces) are too common in ordinary output to mask without mangling the
/// console, and too short to give much of a key away.
pub const MIN_MASKED_LINE_LEN: usize = 16;

/// Why a set of secrets was refused. A build whose secrets cannot be masked should not run
/// rather than print them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    #[error("{0} secrets to mask, over the limit of {MAX_SECRETS}")]
    TooManySecrets(usize),
    #[error("a secret of {0} bytes is over the limit of {MAX_SECRET_LEN} bytes that can be masked")]
    SecretTooLong(usize),
    #[error(
        "secrets of {0} bytes in all are over the limit of {MAX_TOTAL_SECRET_BYTES} bytes that can be masked"
    )]
    TooManyBytes(usize),
}

/// Masks the secrets of one console stream.
pub struct Masker {
    automaton: Automaton,
    /// The automaton's state after the bytes fed so far.
    state: StateId,
    /// Bytes fed and not yet written out, from the first one whose fate is undecided.
    held: VecDeque<u8>,
    /// For each held byte, the length of the longest secret found to start there (0: none).
    longest: VecDeque<u32>,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The held bytes may be the start of a secret.
        f.debug_struct("Masker")
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl Masker {
    /// A masker of `secrets` (empty ones ignored, duplicates counted once).
    pub fn new(secrets: impl IntoIterator<Item = Vec<u8>>) -> Result<Masker, MaskError> {
        let mut distinct = BTreeSet::new();
        let mut total = 0usize;
        for secret in secrets {
            if secret.is_empty() || distinct.contains(&secret) {
                continue;
            }
            if secret.len() > MAX_SECRET_LEN {
                return Err(MaskError::SecretTooLong(secret.len()));
            }
            total += secret.len();
            if total > MAX_TOTAL_SECRET_BYTES {
                return Err(MaskError::TooManyBytes(total));
            }
            distinct.insert(secret);
            if distinct.len() > MAX_SECRETS {
                return Err(MaskError::TooManySecrets(distinct.len()));
            }
        }
        let mut patterns = BTreeSet::new();
        for secret in &distinct {
            add_forms(secret, &mut patterns);
        }
        Ok(Masker {
            automaton: Automaton::new(patterns.iter().map(Vec::as_slice)),
            state: ROOT,
            held: VecDeque::new(),
            longest: VecDeque::new(),
        })
    }

    /// Feeds the next bytes of the stream, appending to `out` what can be written out.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &byte in input {
            // Most bytes of a console start no secret and continue none.
            if self.state == ROOT && self.held.is_empty() && !self.automaton.starts_pattern(byte) {
                out.push(byte);
            } else {
                self.push(byte, out);
            }
        }
    }

    /// Ends the stream, appending to `out` what was held. The masker can then take a new
    /// stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.write_out(self.held.len(), out);
        self.state = ROOT;
    }

    /// How many bytes fed are held back, as the start of what may be a secret.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn push(&mut self, byte: u8, out: &mut Vec<u8>) {
        self.held.push_back(byte);
        self.longest.push_back(0);
        self.state = self.automaton.next(self.state, byte);
        let held = self.held.len();
        for len in self.automaton.matches(self.state) {
            // A secret that starts before the held bytes overlaps what was decided.
            if let Some(start) = held.checked_sub(len) {
                let longest = &mut self.longest[start];
                *longest = (*longest).max(len as u32);
            }
        }
        // A held byte is decided once no secret can still start there: no longer secret
        // can, and those that could be no longer have all been found.
        let decided = held.saturating_sub(self.automaton.open_len(self.state));
        self.write_out(decided, out);
    }

    /// Writes out the first `decided` held bytes, each secret starting among them masked
    /// (whole, though it may end past them).
    fn write_out(&mut self, mut decided: usize, out: &mut Vec<u8>) {
        while decided > 0 {
            let Some(&longest) = self.longest.front() else {
                return;
            };
            if longest > 0 {
                let len = (longest as usize).min(self.held.len());
                out.extend_from_slice(MASK);
                self.held.drain(..len);
                self.longest.drain(..len);
                decided = decided.saturating_sub(len);
            } else {
                out.extend(self.held.pop_front());
                self.longest.pop_front();
                decided -= 1;
            }
        }
    }
}

/// The forms of `secret` that are masked: the secret; for one with a line feed, the same
/// without its final line end and with CR LF line ends, and each of its lines of at least
/// [`MIN_MASKED_LINE_LEN`] bytes.
fn add_forms(secret: &[u8], patterns: &mut BTreeSet<Vec<u8>>) {
    patterns.insert(secret.to_vec());
    if !secret.contains(&b'\n') {
        return;
    }
    let mut trimmed = secret;
    while let Some(rest) = trimmed
        .strip_suffix(b"\n")
        .or_else(|| trimmed.strip_suffix(b"\r"))
    {
        trimmed = rest;
    }
    for form in [secret, trimmed] {
        if form.is_empty() {
            continue;
        }
        patterns.insert(form.to_vec());
        let mut crlf = Vec::with_capacity(form.len() * 2);
        for (i, &byte) in form.iter().enumerate() {
            if byte == b'\n' && (i == 0 || form[i - 1] != b'\r') {
                crlf.push(b'\r');
            }
            crlf.push(byte);
        }
        patterns.insert(crlf);
    }
    for line in secret.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() >= MIN_MASKED_LINE_LEN {
            patterns.insert(line.to_vec());
        }
    }
}
