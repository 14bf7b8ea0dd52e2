//! Small helpers for the figures: the wall clock the steps also read, percentiles, and what
//! `/proc` says about the machine and a process.

use anyhow::Context;

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME): the clock `date +%s%N` reads in a
/// step, so times taken here and there compare directly.
pub fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Milliseconds between two [`now_ns`] readings.
pub fn ms(from: i128, to: i128) -> f64 {
    (to - from) as f64 / 1e6
}

/// Nearest-rank percentiles of a sample.
pub struct Summary {
    sorted: Vec<f64>,
}

impl Summary {
    pub fn new(values: &[f64]) -> Summary {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Summary { sorted }
    }

    /// The value below which `q` (0..=1) of the sample lies, by nearest rank.
    pub fn pct(&self, q: f64) -> f64 {
        if self.sorted.is_empty() {
            return f64::NAN;
        }
        let rank = (q * self.sorted.len() as f64).ceil().max(1.0) as usize;
        self.sorted[rank.min(self.sorted.len()) - 1]
    }

    pub fn max(&self) -> f64 {
        self.sorted.last().copied().unwrap_or(f64::NAN)
    }

    pub fn min(&self) -> f64 {
        self.sorted.first().copied().unwrap_or(f64::NAN)
    }

    pub fn mean(&self) -> f64 {
        self.sorted.iter().sum::<f64>() / self.sorted.len() as f64
    }

    /// `p50 … p90 … p99 … max …` with one decimal.
    pub fn line(&self) -> String {
        format!(
            "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  (min {:.1}, n {})",
            self.pct(0.5),
            self.pct(0.9),
            self.pct(0.99),
            self.max(),
            self.min(),
            self.sorted.len()
        )
    }
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPUs, CPU model and memory, from `/proc`.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!("{cpus} CPUs ({model}), {mem_gib:.1} GiB")
}

/// User + system CPU seconds of a process so far, all threads (not its children).
pub fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th
    // of those (fields 14 and 15 of the line).
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
        anyhow::bail!("malformed /proc/{pid}/stat");
    };
    // SAFETY: sysconf only reads a configuration value.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((user + system) / per_sec)
}

/// A file time as nanoseconds since the Unix epoch, comparable with [`now_ns`].
pub fn epoch_ns(t: std::time::SystemTime) -> i128 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// A file's creation (`statx` birth) and last modification times, ns since the epoch.
pub fn born_and_modified(path: &std::path::Path) -> anyhow::Result<(i128, i128)> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    let born = meta
        .created()
        .context("the file system keeps no creation times")?;
    Ok((epoch_ns(born), epoch_ns(meta.modified()?)))
}

/// The middle value; the mean of the two middle ones for an even count.
pub fn median(values: &[f64]) -> f64 {
    let sorted = Summary::new(values).sorted;
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// A `kB` line of `/proc/PID/status` (`VmHWM`, `VmRSS`), in KiB; `pid` may be `self`.
pub fn status_kib(pid: &str, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Sets a process's peak RSS (`VmHWM`) back to its current RSS (`clear_refs` 5, Linux 4.0+).
pub fn reset_peak_rss(pid: u32) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("resetting the peak RSS of {pid}"))
}

/// `YYYY-MM-DD HH:MM:SS UTC` now.
pub fn utc_now() -> String {
    let ms = (now_ns() / 1_000_000) as i64;
    steward_protocol::duration::utc(ms)
        .replace('T', " ")
        .replace('Z', " UTC")
}

/// MB/s as the target counts it: bytes / seconds / 1e6.
pub fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

pub fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

/// A cheap streaming checksum (64-bit words, order-dependent) to check that two byte
/// streams are the same, however they were split into chunks.
#[derive(Default)]
pub struct Checksum {
    hash: u64,
    pending: Vec<u8>,
    len: u64,
}

impl Checksum {
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.pending.is_empty() {
            let take = (8 - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < 8 {
                return;
            }
            let word = u64::from_le_bytes(self.pending[..8].try_into().expect("8 bytes"));
            self.mix(word);
            self.pending.clear();
        }
        let mut words = data.chunks_exact(8);
        for word in &mut words {
            self.mix(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        self.pending.extend_from_slice(words.remainder());
    }

    fn mix(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    /// The checksum and the number of bytes seen.
    pub fn finish(mut self) -> (u64, u64) {
        let mut last = [0u8; 8];
        last[..self.pending.len()].copy_from_slice(&self.pending);
        let tail = u64::from_le_bytes(last) ^ (self.pending.len() as u64) << 56;
        self.mix(tail);
        (self.hash, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s = Summary::new(&[5.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!(s.pct(0.5), 3.0);
        assert_eq!(s.pct(0.9), 5.0);
        assert_eq!(s.pct(0.0), 1.0);
        assert_eq!(s.max(), 5.0);
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::new(&hundred);
        assert_eq!((s.pct(0.5), s.pct(0.9), s.pct(0.99)), (50.0, 90.0, 99.0));
    }

    #[test]
    fn checksum_ignores_how_data_is_split() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut whole = Checksum::default();
        whole.update(&data);
        let whole = whole.finish();
        for split in [1, 3, 7, 8, 9, 500] {
            let mut parts = Checksum::default();
            for chunk in data.chunks(split) {
                parts.update(chunk);
            }
            assert_eq!(parts.finish(), whole, "chunks of {split}");
        }
        let mut other = Checksum::default();
        other.update(&data[..999]);
        assert_ne!(other.finish(), whole);
    }
}
