//! A file holding a secret (a mounted token or key list), re-read when it changes.
//!
//! Orchestrators rotate mounted secrets by replacing the file (often through a symlink
//! swap). Each use compares the file's metadata (modification time, length, inode) with
//! what was last read and re-reads only when it changed. If a re-read fails (the file is
//! briefly missing or empty mid-rotation), the last good content stays in use and a
//! warning names the file, never its content.

use parking_lot::Mutex;
use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The content is not usable (empty, or not valid for its purpose).
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why, without quoting the content.
        reason: &'static str,
    },
}

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Self { modified: meta.modified().ok(), len: meta.len(), inode }
    }
}

/// A file whose parsed content is cached until the file changes.
pub struct WatchedFile<T> {
    path: PathBuf,
    parse: fn(&str) -> Result<T, &'static str>,
    current: Mutex<Current<T>>,
}

struct Current<T> {
    stamp: Stamp,
    value: Arc<T>,
    /// A failed re-read was already reported (once per failure streak, not per use).
    warned: bool,
}

impl<T> fmt::Debug for WatchedFile<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchedFile").field("path", &self.path).finish_non_exhaustive()
    }
}

impl<T> WatchedFile<T> {
    /// Reads and parses `path` now; fails if it is unreadable or invalid.
    pub fn open(path: &Path, parse: fn(&str) -> Result<T, &'static str>) -> Result<Self, SecretFileError> {
        let (stamp, value) = load(path, parse)?;
        let current = Current { stamp, value: Arc::new(value), warned: false };
        Ok(Self { path: path.to_owned(), parse, current: Mutex::new(current) })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current content: re-read if the file changed since the last read, else cached.
    pub fn get(&self) -> Arc<T> {
        let mut current = self.current.lock();
        let unchanged = std::fs::metadata(&self.path).is_ok_and(|m| Stamp::of(&m) == current.stamp);
        if !unchanged {
            match load(&self.path, self.parse) {
                Ok((stamp, value)) => {
                    tracing::info!(file = %self.path.display(), "secret file changed; reloaded");
                    *current = Current { stamp, value: Arc::new(value), warned: false };
                }
                Err(e) if !current.warned => {
                    tracing::warn!(error = %e, "secret file unusable; keeping the last good content");
                    current.warned = true;
                }
                Err(_) => {}
            }
        }
        current.value.clone()
    }
}

fn load<T>(path: &Path, parse: fn(&str) -> Result<T, &'static str>) -> Result<(Stamp, T), SecretFileError> {
    let read_err = |source| SecretFileError::Read { path: path.display().to_string(), source };
    // Stamp first: a change racing the read is seen (and re-read) on the next use.
    let stamp = Stamp::of(&std::fs::metadata(path).map_err(read_err)?);
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    let value = parse(&text)
        .map_err(|reason| SecretFileError::Invalid { path: path.display().to_string(), reason })?;
    Ok((stamp, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn non_empty(s: &str) -> Result<String, &'static str> {
        let t = s.trim();
        if t.is_empty() { Err("file is empty") } else { Ok(t.to_owned()) }
    }

    #[test]
    fn rereads_on_change_and_keeps_the_last_good_content() {
        let dir = std::env::temp_dir().join(format!("dli-graphql-secret-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("token");
        std::fs::write(&path, "first\n").expect("write");
        let f = WatchedFile::open(&path, non_empty).expect("opens");
        assert_eq!(*f.get(), "first");
        std::fs::write(&path, "second-longer\n").expect("write");
        assert_eq!(*f.get(), "second-longer");
        std::fs::write(&path, "  \n").expect("write");
        assert_eq!(*f.get(), "second-longer", "an empty file keeps the last good token");
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(*f.get(), "second-longer", "a missing file keeps the last good token");
        assert!(matches!(WatchedFile::open(&path, non_empty), Err(SecretFileError::Read { .. })));
        std::fs::write(&path, "").expect("write");
        let err = WatchedFile::open(&path, non_empty).expect_err("empty is refused");
        assert!(err.to_string().ends_with("file is empty"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
