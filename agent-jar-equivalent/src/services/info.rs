//! `Info` and `InfoV2`: facts about the agent's machine for `node-info` and the
//! controller's monitors (`InfoV2` adds the size of the work dir's file system, which the
//! controller's default disk-space threshold depends on).

use steward_protocol::services::{AgentInfo, Response};

use super::Context;

/// The answer to `Info`.
pub fn info(context: &Context) -> Response {
    Response::Info(collect(context).0)
}

/// The answer to `InfoV2`.
pub fn info_v2(context: &Context) -> Response {
    let (info, work_dir_total_bytes) = collect(context);
    Response::InfoV2 {
        info,
        work_dir_total_bytes,
    }
}

/// Collects the facts now, with the size of the work dir's file system; anything
/// unreadable reads as 0.
pub fn collect(context: &Context) -> (AgentInfo, u64) {
    let (memory_total_bytes, memory_available_bytes) = memory();
    let disk = disk_space(context.work_dir());
    let info = AgentInfo {
        os: std::env::consts::OS.to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        cpus: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        memory_total_bytes,
        memory_available_bytes,
        work_dir: context.work_dir().display().to_string(),
        work_dir_free_bytes: disk.free,
        agent_version: steward_protocol::STEWARD_VERSION.to_owned(),
        clock_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default(),
    };
    (info, disk.total)
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

/// The file system holding a path, in bytes.
#[derive(Debug, Default, Clone, Copy)]
struct DiskSpace {
    /// Free for unprivileged users (what a step may still write).
    free: u64,
    /// The file system's size.
    total: u64,
}

/// [`DiskSpace`] of the file system holding `path`; zeros when it cannot be read.
fn disk_space(path: &std::path::Path) -> DiskSpace {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return DiskSpace::default();
    };
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` a valid out-pointer.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return DiskSpace::default();
    }
    let block = stat.f_frsize as u64;
    DiskSpace {
        free: (stat.f_bavail as u64).saturating_mul(block),
        total: (stat.f_blocks as u64).saturating_mul(block),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let (info, total) = collect(&Context::new(dir.path().to_path_buf()));
        assert_eq!(info.os, std::env::consts::OS);
        assert!(info.cpus >= 1);
        assert!(info.work_dir_free_bytes > 0);
        assert!(total >= info.work_dir_free_bytes);
        assert!(info.memory_total_bytes >= info.memory_available_bytes);
        assert!(info.clock_ms > 0);
    }
}
