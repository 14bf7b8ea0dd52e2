//! Allocator settings for processes that carry channel traffic.
//!
//! Every DATA frame travels in its own 64 KiB buffer, allocated on one thread and often
//! freed on another. With glibc's defaults, freed buffers that end up at the top of a heap
//! go back to the kernel as soon as 128 KiB are free there, and the next frames fault the
//! same pages in again: on the benchmark machine that cost more CPU than the copies
//! themselves (see docs/benchmarks.md). Keeping up to [`TRIM_THRESHOLD`] of freed memory per
//! heap for reuse removes those faults; memory still returns to the kernel beyond it.

/// Free memory a heap keeps for reuse before trimming.
pub const TRIM_THRESHOLD: usize = 64 * 1024 * 1024;
/// Allocations from this size up get their own mapping; below it they come from the heaps,
/// so frame buffers (and the socket buffers that grow past 128 KiB) are reused.
pub const MMAP_THRESHOLD: usize = 4 * 1024 * 1024;

/// Applies the settings above; call once, first thing in `main`. A no-op where the C
/// library is not glibc.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes allocator parameters; both values are in range
        // (the mmap threshold must stay under 32 MiB on 64-bit glibc).
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
        }
    }
}
