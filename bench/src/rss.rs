//! What a process costs, from `/proc`: resident memory (`VmHWM`, the peak, and `VmRSS`, now)
//! and CPU time.
//!
//! Writing `5` to `/proc/<pid>/clear_refs` resets the peak (Linux 4.0+); where that is not
//! allowed, the peak only grows and phases must be measured in increasing size order.

/// Memory of one process, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Mem {
    pub peak: u64,
    pub now: u64,
}

/// `None` for this process.
pub fn read(pid: Option<u32>) -> Option<Mem> {
    let status = std::fs::read_to_string(proc_path(pid, "status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some(Mem {
        peak: field("VmHWM:")?,
        now: field("VmRSS:")?,
    })
}

/// Resets the peak to the current RSS; `false` when the kernel refused.
pub fn reset_peak(pid: Option<u32>) -> bool {
    std::fs::write(proc_path(pid, "clear_refs"), "5").is_ok()
}

fn proc_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

/// CPU time (user + system, all threads) used so far by a process, in seconds; `None` for
/// this process. Clock-tick resolution (usually 10 ms).
pub fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(proc_path(pid, "stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 / hz.max(1) as f64)
}

/// The machine's busy and total CPU time so far, in clock ticks (`/proc/stat`, all CPUs).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: idle and iowait are not busy.
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Waits until the whole machine is quiet (at most `QUIET_SHARE` busy over one
/// `QUIET_WINDOW`), within `deadline`. The kernel keeps working after a large file is
/// written and freed (writeback, handing freed pages back to the hypervisor); without this,
/// whichever transfer comes next pays for it. Returns whether it settled.
pub async fn settle(deadline: std::time::Duration) -> bool {
    const QUIET_WINDOW: std::time::Duration = std::time::Duration::from_millis(200);
    const QUIET_SHARE: f64 = 0.10;
    let give_up = tokio::time::Instant::now() + deadline;
    let Some(mut last) = cpu_ticks() else {
        return false;
    };
    while tokio::time::Instant::now() < give_up {
        tokio::time::sleep(QUIET_WINDOW).await;
        let Some(now) = cpu_ticks() else {
            return false;
        };
        let (busy, total) = (now.0 - last.0, now.1 - last.1);
        if total > 0 && (busy as f64) / (total as f64) <= QUIET_SHARE {
            return true;
        }
        last = now;
    }
    false
}
