//! The `sftp` subsystem: SFTP version 3 (what OpenSSH's `sftp` and `scp` speak) over the
//! agent's file system, as the agent's user. Relative paths start in the session's
//! directory (the work dir, or the build's workspace).
//!
//! Requests are served one at a time, in order: a client pipelines its reads and writes,
//! and the channel's window bounds what waits. Reads are capped at [`MAX_READ`] bytes, open
//! handles at [`MAX_HANDLES`], packets at [`MAX_PACKET`]. Packet encoding is russh-sftp's.

use std::collections::HashMap;
use std::fs::{Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Packet, StatusCode, Version,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::debug;

/// Largest packet a client may send: a 256 KiB write and its header, what OpenSSH's server
/// also accepts.
pub const MAX_PACKET: u32 = 256 * 1024 + 1024;
/// Largest read answered; longer reads get this much (clients ask for 32 KiB by default).
pub const MAX_READ: u32 = 64 * 1024;
/// Requests a client may have waiting for their answers; OpenSSH's clients keep at most 64
/// in flight.
pub const MAX_QUEUED: usize = 128;
/// Most files and directories open at once in one SFTP session.
pub const MAX_HANDLES: usize = 256;
/// Directory entries returned per `READDIR`.
const READDIR_BATCH: usize = 128;

/// Why the session stops.
#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    #[error("sftp stream: {0}")]
    Io(#[from] io::Error),
    #[error("sftp packet of {0} bytes is over the limit")]
    TooLarge(u32),
    #[error("cannot encode an sftp answer: {0}")]
    Encode(String),
    #[error("the client sent more than {MAX_QUEUED} requests without waiting for answers")]
    TooManyRequests,
}

enum Open {
    File(Arc<std::fs::File>),
    Dir(Option<std::fs::ReadDir>),
}

/// One SFTP session's state.
struct Server {
    cwd: PathBuf,
    handles: HashMap<String, Open>,
    next_handle: u64,
}

/// Serves SFTP on `stream` until the client ends it.
///
/// Requests are read apart from answering: the connection hands a channel its data only as
/// fast as the channel takes it, and answers need the connection too, so a reader that
/// waited for answers to be written could stall both. What a client pipelines waits here,
/// up to [`MAX_QUEUED`] requests; a client that sends more is cut off.
pub async fn serve<S>(stream: S, cwd: PathBuf) -> Result<(), SftpError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (queue, mut requests) = tokio::sync::mpsc::channel::<Bytes>(MAX_QUEUED);
    let read = async move {
        loop {
            let length = match reader.read_u32().await {
                Ok(length) => length,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(SftpError::Io(e)),
            };
            if length > MAX_PACKET {
                return Err(SftpError::TooLarge(length));
            }
            let mut body = vec![0u8; length as usize];
            reader.read_exact(&mut body).await?;
            if queue.try_send(Bytes::from(body)).is_err() {
                return Err(SftpError::TooManyRequests);
            }
        }
    };
    let answer = async {
        let mut server = Server {
            cwd,
            handles: HashMap::new(),
            next_handle: 0,
        };
        while let Some(mut body) = requests.recv().await {
            let answer = match Packet::try_from(&mut body) {
                Ok(request) => server.answer(request).await,
                Err(e) => {
                    debug!(error = %e, "malformed sftp packet");
                    Packet::error(0, StatusCode::BadMessage)
                }
            };
            let bytes = Bytes::try_from(answer).map_err(|e| SftpError::Encode(e.to_string()))?;
            writer.write_all(&bytes).await?;
            writer.flush().await?;
        }
        Ok::<(), SftpError>(())
    };
    // The reader ends first (EOF); the answers to what it queued still go out.
    let (read, answered) = tokio::join!(read, answer);
    read.and(answered)
}

/// The SFTP status for an OS error, with the OS's words.
fn failure(id: u32, error: &io::Error) -> Packet {
    let code = match error.kind() {
        io::ErrorKind::NotFound => StatusCode::NoSuchFile,
        io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    };
    Packet::status(id, code, &error.to_string(), "en")
}

fn ok(id: u32) -> Packet {
    Packet::status(id, StatusCode::Ok, "", "en")
}

/// A file's attributes: the mode carries the type, as `ls -l` shows it.
fn attributes(metadata: &Metadata) -> FileAttributes {
    FileAttributes {
        size: Some(metadata.len()),
        uid: Some(metadata.uid()),
        gid: Some(metadata.gid()),
        permissions: Some(metadata.mode()),
        atime: Some(metadata.atime().clamp(0, u32::MAX as i64) as u32),
        mtime: Some(metadata.mtime().clamp(0, u32::MAX as i64) as u32),
        ..Default::default()
    }
}

/// Runs blocking file system work off the runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
}

impl Server {
    fn resolve(&self, path: &str) -> PathBuf {
        if path.is_empty() {
            return self.cwd.clone();
        }
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.cwd.join(path)
        }
    }

    fn add_handle(&mut self, open: Open) -> Option<String> {
        if self.handles.len() >= MAX_HANDLES {
            return None;
        }
        let name = format!("h{}", self.next_handle);
        self.next_handle += 1;
        self.handles.insert(name.clone(), open);
        Some(name)
    }

    fn file(&self, handle: &str) -> Option<Arc<std::fs::File>> {
        match self.handles.get(handle) {
            Some(Open::File(file)) => Some(file.clone()),
            _ => None,
        }
    }

    async fn answer(&mut self, request: Packet) -> Packet {
        let id = request.get_request_id();
        match request {
            Packet::Init(_) => Packet::Version(Version::new()),
            Packet::Open(open) => {
                let path = self.resolve(&open.filename);
                let flags = open.pflags;
                let mode = open.attrs.permissions.unwrap_or(0o666) & 0o7777;
                let opened = blocking(move || {
                    use std::os::unix::fs::OpenOptionsExt;
                    let mut options: OpenOptions = flags.into();
                    if !flags.intersects(OpenFlags::READ | OpenFlags::WRITE | OpenFlags::APPEND) {
                        options.read(true);
                    }
                    options.mode(mode).open(&path)
                })
                .await;
                match opened {
                    Ok(file) => match self.add_handle(Open::File(Arc::new(file))) {
                        Some(handle) => Packet::Handle(Handle { id, handle }),
                        None => {
                            Packet::status(id, StatusCode::Failure, "too many open files", "en")
                        }
                    },
                    Err(e) => failure(id, &e),
                }
            }
            Packet::Close(close) => match self.handles.remove(&close.handle) {
                Some(_) => ok(id),
                None => Packet::status(id, StatusCode::Failure, "no such handle", "en"),
            },
            Packet::Read(read) => {
                let Some(file) = self.file(&read.handle) else {
                    return Packet::status(id, StatusCode::Failure, "no such handle", "en");
                };
                let len = read.len.min(MAX_READ) as usize;
                let offset = read.offset;
                let data = blocking(move || {
                    let mut data = vec![0u8; len];
                    let mut filled = 0;
                    // A short read is not the end: read until full or at the end.
                    while filled < len {
                        match file.read_at(&mut data[filled..], offset + filled as u64) {
                            Ok(0) => break,
                            Ok(n) => filled += n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                    data.truncate(filled);
                    Ok(data)
                })
                .await;
                match data {
                    Ok(data) if data.is_empty() && len > 0 => {
                        Packet::status(id, StatusCode::Eof, "end of file", "en")
                    }
                    Ok(data) => Packet::Data(Data { id, data }),
                    Err(e) => failure(id, &e),
                }
            }
            Packet::Write(write) => {
                let Some(file) = self.file(&write.handle) else {
                    return Packet::status(id, StatusCode::Failure, "no such handle", "en");
                };
                let offset = write.offset;
                let data = write.data;
                match blocking(move || file.write_all_at(&data, offset)).await {
                    Ok(()) => ok(id),
                    Err(e) => failure(id, &e),
                }
            }
            Packet::Lstat(lstat) => {
                let path = self.resolve(&lstat.path);
                self.stat_answer(id, blocking(move || std::fs::symlink_metadata(path)))
                    .await
            }
            Packet::Stat(stat) => {
                let path = self.resolve(&stat.path);
                self.stat_answer(id, blocking(move || std::fs::metadata(path)))
                    .await
            }
            Packet::Fstat(fstat) => {
                let Some(file) = self.file(&fstat.handle) else {
                    return Packet::status(id, StatusCode::Failure, "no such handle", "en");
                };
                self.stat_answer(id, blocking(move || file.metadata()))
                    .await
            }
            Packet::SetStat(setstat) => {
                let path = self.resolve(&setstat.path);
                let attrs = setstat.attrs;
                match blocking(move || set_attributes(&path, None, &attrs)).await {
                    Ok(()) => ok(id),
                    Err(e) => failure(id, &e),
                }
            }
            Packet::FSetStat(fsetstat) => {
                let Some(file) = self.file(&fsetstat.handle) else {
                    return Packet::status(id, StatusCode::Failure, "no such handle", "en");
                };
                let attrs = fsetstat.attrs;
                let path = PathBuf::new();
                match blocking(move || set_attributes(&path, Some(&file), &attrs)).await {
                    Ok(()) => ok(id),
                    Err(e) => failure(id, &e),
                }
            }
            Packet::OpenDir(opendir) => {
                let path = self.resolve(&opendir.path);
                match blocking(move || std::fs::read_dir(path)).await {
                    Ok(dir) => match self.add_handle(Open::Dir(Some(dir))) {
                        Some(handle) => Packet::Handle(Handle { id, handle }),
                        None => {
                            Packet::status(id, StatusCode::Failure, "too many open files", "en")
                        }
                    },
                    Err(e) => failure(id, &e),
                }
            }
            Packet::ReadDir(readdir) => self.read_dir(id, &readdir.handle).await,
            Packet::Remove(remove) => {
                let path = self.resolve(&remove.filename);
                self.done(id, blocking(move || std::fs::remove_file(path)))
                    .await
            }
            Packet::MkDir(mkdir) => {
                let path = self.resolve(&mkdir.path);
                let mode = mkdir.attrs.permissions.unwrap_or(0o777) & 0o7777;
                self.done(
                    id,
                    blocking(move || {
                        use std::os::unix::fs::DirBuilderExt;
                        std::fs::DirBuilder::new().mode(mode).create(path)
                    }),
                )
                .await
            }
            Packet::RmDir(rmdir) => {
                let path = self.resolve(&rmdir.path);
                self.done(id, blocking(move || std::fs::remove_dir(path)))
                    .await
            }
            Packet::RealPath(realpath) => {
                let path = self.resolve(&realpath.path);
                let real = blocking(move || Ok(real_path(&path))).await;
                match real {
                    Ok(path) => Packet::Name(Name {
                        id,
                        files: vec![File::dummy(path.to_string_lossy())],
                    }),
                    Err(e) => failure(id, &e),
                }
            }
            Packet::Rename(rename) => {
                let from = self.resolve(&rename.oldpath);
                let to = self.resolve(&rename.newpath);
                self.done(id, blocking(move || std::fs::rename(from, to)))
                    .await
            }
            Packet::ReadLink(readlink) => {
                let path = self.resolve(&readlink.path);
                match blocking(move || std::fs::read_link(path)).await {
                    Ok(target) => Packet::Name(Name {
                        id,
                        files: vec![File::dummy(target.to_string_lossy())],
                    }),
                    Err(e) => failure(id, &e),
                }
            }
            Packet::Symlink(symlink) => {
                // OpenSSH sends the target first and the link second, the reverse of the
                // draft; its clients are the ones that matter here.
                let target = PathBuf::from(&symlink.linkpath);
                let link = self.resolve(&symlink.targetpath);
                self.done(
                    id,
                    blocking(move || std::os::unix::fs::symlink(target, link)),
                )
                .await
            }
            Packet::Extended(_) => Packet::error(id, StatusCode::OpUnsupported),
            // Answers are not requests.
            _ => Packet::error(id, StatusCode::BadMessage),
        }
    }

    async fn stat_answer(
        &self,
        id: u32,
        metadata: impl Future<Output = io::Result<Metadata>>,
    ) -> Packet {
        match metadata.await {
            Ok(metadata) => Packet::Attrs(Attrs {
                id,
                attrs: attributes(&metadata),
            }),
            Err(e) => failure(id, &e),
        }
    }

    async fn done(&self, id: u32, work: impl Future<Output = io::Result<()>>) -> Packet {
        match work.await {
            Ok(()) => ok(id),
            Err(e) => failure(id, &e),
        }
    }

    async fn read_dir(&mut self, id: u32, handle: &str) -> Packet {
        let Some(Open::Dir(dir)) = self.handles.get_mut(handle) else {
            return Packet::status(id, StatusCode::Failure, "no such handle", "en");
        };
        let Some(mut entries) = dir.take() else {
            return Packet::status(id, StatusCode::Failure, "directory busy", "en");
        };
        let batch = blocking(move || {
            let mut files = Vec::new();
            for entry in entries.by_ref().take(READDIR_BATCH) {
                let Ok(entry) = entry else { continue };
                let name = entry.file_name().to_string_lossy().into_owned();
                match std::fs::symlink_metadata(entry.path()) {
                    Ok(metadata) => files.push(File::new(name, attributes(&metadata))),
                    Err(_) => files.push(File::new(name, FileAttributes::default())),
                }
            }
            Ok((entries, files))
        })
        .await;
        match batch {
            Ok((entries, files)) => {
                if let Some(Open::Dir(dir)) = self.handles.get_mut(handle) {
                    *dir = Some(entries);
                }
                if files.is_empty() {
                    Packet::status(id, StatusCode::Eof, "end of directory", "en")
                } else {
                    Packet::Name(Name { id, files })
                }
            }
            Err(e) => failure(id, &e),
        }
    }
}

/// Applies what `attrs` sets, to the open `file` or else to `path`.
fn set_attributes(
    path: &Path,
    file: Option<&std::fs::File>,
    attrs: &FileAttributes,
) -> io::Result<()> {
    if let Some(size) = attrs.size {
        match file {
            Some(file) => file.set_len(size)?,
            None => OpenOptions::new().write(true).open(path)?.set_len(size)?,
        }
    }
    if let Some(mode) = attrs.permissions {
        let permissions = std::fs::Permissions::from_mode(mode & 0o7777);
        match file {
            Some(file) => file.set_permissions(permissions)?,
            None => std::fs::set_permissions(path, permissions)?,
        }
    }
    if let (Some(atime), Some(mtime)) = (attrs.atime, attrs.mtime) {
        let at = |secs: u32| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.into());
        let times = std::fs::FileTimes::new()
            .set_accessed(at(atime))
            .set_modified(at(mtime));
        match file {
            Some(file) => file.set_times(times)?,
            None => std::fs::File::options()
                .write(true)
                .open(path)
                .or_else(|_| std::fs::File::open(path))?
                .set_times(times)?,
        }
    }
    if attrs.uid.is_some() || attrs.gid.is_some() {
        match file {
            Some(file) => std::os::unix::fs::fchown(file, attrs.uid, attrs.gid)?,
            None => std::os::unix::fs::chown(path, attrs.uid, attrs.gid)?,
        }
    }
    Ok(())
}

/// The canonical path when it exists; else the path with `.` and `..` worked out, as a
/// client asks for the real path of a file it is about to create.
fn real_path(path: &Path) -> PathBuf {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real;
    }
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_paths_of_missing_files_are_cleaned() {
        assert_eq!(
            real_path(Path::new("/nonexistent-x/a/../b/./c")),
            PathBuf::from("/nonexistent-x/b/c")
        );
    }
}
