//! The file services through a real channel: simple calls, streamed reads and atomic
//! streamed writes, and errors that name the path.

mod common;

use bytes::Bytes;
use common::{Agent, pattern, sha256_hex, wait_until, within};
use steward_channel::{MuxStream, call};
use steward_protocol::channel::ResetCode;
use steward_protocol::services::{FileKind, MAX_RESPONSE_LEN, Request, Response};

#[tokio::test]
async fn stat_list_mkdir_remove() {
    let agent = Agent::start();
    let done = agent
        .call(Request::MakeDirs {
            path: "a/b/c".into(),
        })
        .await;
    assert_eq!(done, Response::Done);
    std::fs::write(agent.work.path().join("a/file"), b"12345").unwrap();

    let Response::Stat(stat) = agent
        .call(Request::Stat {
            path: "a/file".into(),
        })
        .await
    else {
        panic!("no stat")
    };
    assert_eq!((stat.kind, stat.size), (FileKind::File, 5));

    let Response::List(entries) = agent
        .call(Request::List {
            path: agent.path("a"),
        })
        .await
    else {
        panic!("no listing")
    };
    let names: Vec<_> = entries
        .iter()
        .map(|e| (e.name.as_str(), &e.stat.kind))
        .collect();
    assert_eq!(names, [("b", &FileKind::Dir), ("file", &FileKind::File)]);

    assert_eq!(
        agent.call(Request::Remove { path: "a".into() }).await,
        Response::Done
    );
    assert!(!agent.work.path().join("a").exists());
    assert_eq!(
        agent.call(Request::Remove { path: "a".into() }).await,
        Response::Done
    );
}

#[tokio::test]
async fn sha256_matches_a_known_digest() {
    let agent = Agent::start();
    std::fs::write(agent.work.path().join("abc"), b"abc").unwrap();
    assert_eq!(
        agent.call(Request::Sha256 { path: "abc".into() }).await,
        Response::Sha256 {
            hex: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()
        }
    );
}

#[tokio::test]
async fn errors_name_the_path_and_the_os_reason() {
    let agent = Agent::start();
    let missing = agent.path("missing");
    let expect = |verb: &str| Response::Error {
        message: format!("cannot {verb} {missing}: No such file or directory (os error 2)"),
    };
    let path = || "missing".to_owned();
    assert_eq!(
        agent.call(Request::Stat { path: path() }).await,
        expect("stat")
    );
    assert_eq!(
        agent.call(Request::List { path: path() }).await,
        expect("list")
    );
    assert_eq!(
        agent.call(Request::Sha256 { path: path() }).await,
        expect("open")
    );
    let mut stream = agent
        .open(&Request::ReadFile {
            path: path(),
            offset: 0,
        })
        .await;
    stream.finish().await.unwrap();
    assert_eq!(
        within(call::read_response(&mut stream)).await.unwrap(),
        expect("open")
    );
}

/// Writes `data` to `path` with `WriteFile`, returning the answer.
async fn write_file(agent: &Agent, path: &str, data: &[u8], mode: Option<u32>) -> Response {
    let stream = agent
        .open(&Request::WriteFile {
            path: path.into(),
            mode,
        })
        .await;
    let (mut send, mut recv) = stream.into_split();
    let data = Bytes::copy_from_slice(data);
    // Sends and reads at once, as a controller should: an early error arrives at once.
    let writer = tokio::spawn(async move {
        if send.send(data).await.is_ok() {
            let _ = send.finish().await;
        }
    });
    let body = within(recv.read_to_end(MAX_RESPONSE_LEN)).await.unwrap();
    writer.await.unwrap();
    steward_protocol::services::decode(&body).unwrap()
}

/// Reads `path` from `offset` with `ReadFile`: the announced size and the bytes.
async fn read_file(agent: &Agent, path: &str, offset: u64) -> (u64, Vec<u8>) {
    let mut stream = agent
        .open(&Request::ReadFile {
            path: path.into(),
            offset,
        })
        .await;
    stream.finish().await.unwrap();
    let Response::FileStart { size } = within(call::read_response(&mut stream)).await.unwrap()
    else {
        panic!("no FileStart")
    };
    let mut bytes = Vec::new();
    within(async {
        while let Some(chunk) = stream.recv().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
    })
    .await;
    (size, bytes)
}

#[tokio::test]
async fn write_then_read_a_few_mebibytes() {
    let agent = Agent::start();
    let data = pattern(5 << 20 | 12345);
    let written = write_file(&agent, "dir-less.bin", &data, Some(0o640)).await;
    assert_eq!(
        written,
        Response::Written {
            bytes: data.len() as u64
        }
    );
    let on_disk = agent.work.path().join("dir-less.bin");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&on_disk).unwrap().permissions().mode() & 0o777,
        0o640
    );
    assert_eq!(
        agent
            .call(Request::Sha256 {
                path: "dir-less.bin".into()
            })
            .await,
        Response::Sha256 {
            hex: sha256_hex(&data)
        }
    );

    let (size, read) = read_file(&agent, "dir-less.bin", 0).await;
    assert_eq!(size, data.len() as u64);
    assert!(
        sha256_hex(&read) == sha256_hex(&data),
        "read back other bytes"
    );

    let (_, tail) = read_file(&agent, &agent.path("dir-less.bin"), 5 << 20).await;
    assert_eq!(tail, &data[5 << 20..]);
}

/// How many of the pages of `path` in `from..to` are in the page cache (`mincore`).
#[cfg(target_os = "linux")]
fn cached_pages(path: &std::path::Path, from: usize, to: usize) -> (usize, usize) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    let page = 4096;
    let pages = (to - from).div_ceil(page);
    let mut resident = vec![0u8; pages];
    // SAFETY: a read-only shared mapping of a file kept open for its whole life, unmapped
    // before returning; `mincore` writes one byte per page into a buffer of that length.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            to - from,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            from as libc::off_t,
        );
        assert_ne!(map, libc::MAP_FAILED, "mmap {}", path.display());
        let done = libc::mincore(map, to - from, resident.as_mut_ptr());
        libc::munmap(map, to - from);
        assert_eq!(done, 0, "mincore: {}", std::io::Error::last_os_error());
    }
    (resident.iter().filter(|r| *r & 1 == 1).count(), pages)
}

// Linux: the streaming uses `sync_file_range`; elsewhere the file is only fsync'd.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_large_write_streams_to_disk_and_keeps_only_its_last_steps_cached() {
    use steward_agent::services::transfer::WRITEBACK_STEP;
    let agent = Agent::start_on_disk();
    let step = WRITEBACK_STEP as usize;
    let data = pattern(8 * step + 12345);
    let written = write_file(&agent, "big.bin", &data, None).await;
    assert_eq!(
        written,
        Response::Written {
            bytes: data.len() as u64
        }
    );
    let on_disk = agent.work.path().join("big.bin");
    // The first steps went to disk while the rest arrived, and left the cache.
    let (early, pages) = cached_pages(&on_disk, 0, 5 * step);
    assert!(
        early <= pages / 10,
        "{early} of the first {pages} pages are still cached"
    );
    // The last ones were written by the fsync and stay cached, as a small file would.
    let (late, pages) = cached_pages(&on_disk, 7 * step, data.len());
    assert!(
        late >= pages / 2,
        "only {late} of the last {pages} pages are cached"
    );
    assert_eq!(
        agent
            .call(Request::Sha256 {
                path: "big.bin".into()
            })
            .await,
        Response::Sha256 {
            hex: sha256_hex(&data)
        }
    );
}

#[tokio::test]
async fn a_write_into_a_missing_directory_is_an_error_naming_the_path() {
    let agent = Agent::start();
    let answer = write_file(&agent, "no/such/dir/f", &pattern(3 << 20), None).await;
    assert_eq!(
        answer,
        Response::Error {
            message: format!(
                "cannot create {}: No such file or directory (os error 2)",
                agent.path("no/such/dir/f")
            )
        }
    );
}

fn temp_files(agent: &Agent) -> Vec<String> {
    std::fs::read_dir(agent.work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".steward-tmp-"))
        .collect()
}

/// Starts replacing `keep` and stops midway once the agent has written part of it.
async fn half_written(agent: &Agent) -> MuxStream {
    std::fs::write(agent.work.path().join("keep"), b"old contents").unwrap();
    let mut stream = agent
        .open(&Request::WriteFile {
            path: "keep".into(),
            mode: None,
        })
        .await;
    // More than the agent gathers before a write (512 KiB), so some of it reaches the disk.
    stream
        .send(Bytes::from(pattern(1024 * 1024)))
        .await
        .unwrap();
    wait_until("part of the new file is on disk", || {
        temp_files(agent).iter().any(|name| {
            let len = std::fs::metadata(agent.work.path().join(name)).map(|m| m.len());
            name.starts_with(".keep.") && len.unwrap_or(0) > 0
        })
    })
    .await;
    stream
}

#[tokio::test]
async fn a_cancelled_write_leaves_the_old_file_and_no_temp_file() {
    let agent = Agent::start();
    let stream = half_written(&agent).await;
    stream.reset(ResetCode::Cancelled, "stopped");
    wait_until("the temp file is gone", || temp_files(&agent).is_empty()).await;
    assert_eq!(
        std::fs::read(agent.work.path().join("keep")).unwrap(),
        b"old contents"
    );
}

#[tokio::test]
async fn a_lost_channel_mid_write_leaves_the_old_file_and_no_temp_file() {
    let agent = Agent::start();
    let _stream = half_written(&agent).await;
    agent.cut();
    wait_until("the temp file is gone", || temp_files(&agent).is_empty()).await;
    assert_eq!(
        std::fs::read(agent.work.path().join("keep")).unwrap(),
        b"old contents"
    );
}

#[tokio::test]
async fn many_simple_calls_all_get_their_answer() {
    // Each answer must arrive whole, never overtaken by a RESET as the handler ends.
    let agent = Agent::start();
    for _ in 0..200 {
        assert!(matches!(agent.call(Request::Info).await, Response::Info(_)));
    }
}

#[tokio::test]
async fn info_v2_gives_the_work_dirs_file_system_size() {
    let agent = Agent::start();
    match agent.call(Request::InfoV2).await {
        Response::InfoV2 {
            info,
            work_dir_total_bytes,
        } => {
            assert_eq!(info.work_dir, agent.work.path().display().to_string());
            assert!(info.work_dir_free_bytes > 0);
            assert!(work_dir_total_bytes >= info.work_dir_free_bytes);
        }
        other => panic!("InfoV2 answered {other:?}"),
    }
}
