//! `Info`: facts about the agent's machine for `node-info` and the controller's monitors.

use steward_protocol::services::AgentInfo;

use super::Context;

/// Collects the facts now; anything unreadable reads as 0.
pub fn collect(context: &Context) -> AgentInfo {
    let (memory_total_bytes, memory_available_bytes) = memory();
    AgentInfo {
        os: std::env::consts::OS.to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        memory_total_bytes,
        memory_available_bytes,
        work_dir: context.work_dir().display().to_string(),
        work_dir_free_bytes: free_bytes(context.work_dir()),
        agent_version: steward_protocol::STEWARD_VERSION.to_owned(),
        clock_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default(),
    }
}

/// Total and available memory from `/proc/meminfo` (Linux); zeros elsewhere.
fn memory() -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else {
        return (0, 0);
    };
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or(0)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// Bytes free for unprivileged users on the file system holding `path`.
fn free_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return 0;
    }
    (stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let info = collect(&Context::new(dir.path().to_path_buf()));
        assert_eq!(info.os, std::env::consts::OS);
        assert!(info.cpus >= 1);
        assert!(info.work_dir_free_bytes > 0);
        assert!(info.memory_total_bytes >= info.memory_available_bytes);
        assert!(info.clock_ms > 0);
    }
}
