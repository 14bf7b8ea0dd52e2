//! `FindFiles`: the files under a directory that Ant patterns select, for the artifact
//! archiver and the JUnit publisher. The walk skips directories no pattern can reach and
//! never enters a directory through a symlink (a link loop, or a walk out of the
//! workspace); a symlink to a file counts as that file, as Ant's scanner follows it.

use std::path::Path;

use steward_protocol::ant_glob::GlobSet;
use steward_protocol::services::{FindFiles, FoundFile, Response};

use super::Context;
use super::files::failed;

/// Finds the files `request` asks for; an answer in every case.
pub async fn find(context: &Context, request: FindFiles) -> Response {
    let root = context.resolve(&request.dir);
    let found = tokio::task::spawn_blocking(move || walk(&root, &request)).await;
    match found {
        Ok(Ok(files)) => Response::Files(files),
        Ok(Err(message)) => Response::Error { message },
        Err(e) => Response::Error {
            message: format!("the file search stopped: {e}"),
        },
    }
}

fn walk(root: &Path, request: &FindFiles) -> Result<Vec<FoundFile>, String> {
    let globs = GlobSet::new(
        &request.includes,
        &request.excludes,
        request.case_sensitive,
        request.default_excludes,
    )
    .map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    if !root.is_dir() {
        return Ok(found);
    }
    // Directories to read, relative to the root ("" is the root).
    let mut pending = vec![String::new()];
    while let Some(dir) = pending.pop() {
        let path = if dir.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&dir)
        };
        let entries = std::fs::read_dir(&path).map_err(|e| failed("list", &path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| failed("list", &path, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                // A name that is not UTF-8 cannot be matched or served by name.
                continue;
            };
            let relative = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if globs.could_match_below(&relative) && !globs.excluded_dir(&relative) {
                    pending.push(relative);
                }
                continue;
            }
            if !globs.matches(&relative) {
                continue;
            }
            // A symlink counts when it leads to a file.
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            if found.len() == request.max as usize {
                return Err(format!(
                    "more than {} files match {:?} in {}",
                    request.max,
                    request.includes,
                    root.display()
                ));
            }
            found.push(FoundFile {
                path: relative,
                size: meta.len(),
            });
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(includes: &str, excludes: &str, max: u32) -> FindFiles {
        FindFiles {
            dir: String::new(),
            includes: includes.into(),
            excludes: excludes.into(),
            case_sensitive: true,
            default_excludes: true,
            max,
        }
    }

    #[test]
    fn patterns_select_files_and_links_are_not_followed_into_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in ["a/x.jar", "a/b/y.jar", "a/b/z.txt", ".git/c.jar", "top.jar"] {
            std::fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
            std::fs::write(root.join(file), file).unwrap();
        }
        std::os::unix::fs::symlink(root, root.join("a/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("top.jar"), root.join("a/link.jar")).unwrap();
        let paths = |r: &FindFiles| -> Vec<String> {
            walk(root, r).unwrap().into_iter().map(|f| f.path).collect()
        };
        assert_eq!(
            paths(&request("**/*.jar", "", 100)),
            ["a/b/y.jar", "a/link.jar", "a/x.jar", "top.jar"]
        );
        assert_eq!(
            paths(&request("a/**/*.jar", "**/b/**", 100)),
            ["a/link.jar", "a/x.jar"]
        );
        let sizes = walk(root, &request("top.jar", "", 100)).unwrap();
        assert_eq!(sizes[0].size, "top.jar".len() as u64);
        let e = walk(root, &request("**/*.jar", "", 2)).unwrap_err();
        assert!(e.contains("more than 2 files"), "{e}");
        assert!(walk(root, &request("/etc/passwd", "", 2)).is_err());
    }
}
