//! Where records live: the user's state folder (`$FBUILD_STATE_DIR`, else
//! `$XDG_STATE_HOME/fbuild`, else `~/.local/state/fbuild`), one file per
//! project (context folder and Dockerfile) and target under `records/`, at
//! most [`MAX_RECORDS`] files (the oldest go); and a local cache folder,
//! one file per target beside the folder's `index.json`, so the record
//! travels with the cache to the next runner.
//!
//! A record file is written to a temporary file in the same folder and
//! renamed into place. Reading one is reading untrusted input (a cache
//! folder comes from anywhere): a regular file only, opened without
//! following a symlink, at most [`MAX_RECORD_BYTES`], parsed with unknown
//! fields refused; a corrupt record or one of another version is an error
//! the caller turns into a warning.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{BuildRecord, RECORD_VERSION};

/// The environment variable naming the state folder (tests set it).
pub const STATE_DIR_ENV: &str = "FBUILD_STATE_DIR";
/// Records kept in the state folder.
pub const MAX_RECORDS: usize = 200;
/// The largest record file read or written.
pub const MAX_RECORD_BYTES: u64 = 8 << 20;

/// A record that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("cannot read the build record {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the build record {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the build record {path} is not a regular file of at most {MAX_RECORD_BYTES} bytes")]
    NotARecordFile { path: PathBuf },
    #[error("the build record {path} is corrupt")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the build record {path} was written by another fbuild (record version {found}, this one reads {RECORD_VERSION})")]
    OtherVersion { path: PathBuf, found: u64 },
    #[error("no state folder: none of {STATE_DIR_ENV}, XDG_STATE_HOME or HOME is set")]
    NoStateDir,
}

/// The folder records are kept in.
#[derive(Debug, Clone)]
pub struct RecordStore {
    dir: PathBuf,
}

impl RecordStore {
    /// The user's state folder, from the environment (`lookup` reads a
    /// variable).
    pub fn from_env(lookup: &dyn Fn(&str) -> Option<String>) -> Result<RecordStore, RecordError> {
        let set = |name: &str| lookup(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let base = set(STATE_DIR_ENV)
            .or_else(|| set("XDG_STATE_HOME").map(|d| d.join("fbuild")))
            .or_else(|| set("HOME").map(|d| d.join(".local/state/fbuild")))
            .ok_or(RecordError::NoStateDir)?;
        Ok(RecordStore { dir: base.join("records") })
    }

    /// A store in `dir` itself.
    pub fn at(dir: impl Into<PathBuf>) -> RecordStore {
        RecordStore { dir: dir.into() }
    }

    /// The record file of a project's target.
    pub fn path(&self, context: &Path, dockerfile: &Path, target: &str) -> PathBuf {
        // The same folder however it was named (`.`, `./`, a symlink).
        let absolute =
            |p: &Path| std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.to_owned());
        let mut hasher = Sha256::new();
        for part in [absolute(context).as_os_str(), absolute(dockerfile).as_os_str(), target.as_ref()] {
            hasher.update(part.as_encoded_bytes());
            hasher.update(b"\0");
        }
        self.dir.join(format!("{}.json", &hex::encode(hasher.finalize())[..32]))
    }

    /// The last record of a project's target, if any.
    pub fn load(&self, context: &Path, dockerfile: &Path, target: &str) -> Result<Option<BuildRecord>, RecordError> {
        read(&self.path(context, dockerfile, target))
    }

    /// Keeps `record` as the project's last, then removes the oldest
    /// records beyond the newest 200.
    pub fn save(
        &self,
        context: &Path,
        dockerfile: &Path,
        target: &str,
        record: &BuildRecord,
    ) -> Result<PathBuf, RecordError> {
        let path = self.path(context, dockerfile, target);
        write(&path, record)?;
        self.trim();
        Ok(path)
    }

    fn trim(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        if files.len() <= MAX_RECORDS {
            return;
        }
        files.sort();
        for (_, path) in &files[..files.len() - MAX_RECORDS] {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The record file of `target` in a local cache folder.
pub fn cache_folder_path(dir: &Path, target: &str) -> PathBuf {
    let name =
        if target.is_empty() { "default".to_owned() } else { hex::encode(&Sha256::digest(target.as_bytes())[..8]) };
    dir.join(format!("fbuild-record-{name}.json"))
}

/// Reads the record of `target` carried in a local cache folder.
pub fn load_from_cache_folder(dir: &Path, target: &str) -> Result<Option<BuildRecord>, RecordError> {
    read(&cache_folder_path(dir, target))
}

/// Writes the record of `target` into a local cache folder.
pub fn save_to_cache_folder(dir: &Path, record: &BuildRecord) -> Result<PathBuf, RecordError> {
    let path = cache_folder_path(dir, &record.target);
    write(&path, record)?;
    Ok(path)
}

/// Reads a record file; `Ok(None)` when there is none.
pub fn read(path: &Path) -> Result<Option<BuildRecord>, RecordError> {
    let read_err = |source| RecordError::Read { path: path.to_owned(), source };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
            return Err(RecordError::NotARecordFile { path: path.to_owned() })
        }
        Err(error) => return Err(read_err(error)),
    };
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() || meta.len() > MAX_RECORD_BYTES {
        return Err(RecordError::NotARecordFile { path: path.to_owned() });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_RECORD_BYTES + 1).read_to_end(&mut bytes).map_err(read_err)?;
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(RecordError::NotARecordFile { path: path.to_owned() });
    }
    // The version first: a record of another version may not parse as this one.
    #[derive(serde::Deserialize)]
    struct Header {
        version: u64,
    }
    let corrupt = |source| RecordError::Corrupt { path: path.to_owned(), source };
    let header: Header = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if header.version != u64::from(RECORD_VERSION) {
        return Err(RecordError::OtherVersion { path: path.to_owned(), found: header.version });
    }
    serde_json::from_slice(&bytes).map(Some).map_err(corrupt)
}

fn write(path: &Path, record: &BuildRecord) -> Result<(), RecordError> {
    let write_err = |source| RecordError::Write { path: path.to_owned(), source };
    let bytes = serde_json::to_vec(record).map_err(|e| write_err(std::io::Error::other(e)))?;
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(write_err(std::io::Error::other("the record is larger than the bound")));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let mut temp = tempfile::Builder::new().prefix(".fbuild-record-").tempfile_in(dir).map_err(write_err)?;
    temp.write_all(&bytes).map_err(write_err)?;
    temp.as_file().sync_all().map_err(write_err)?;
    temp.persist(path).map_err(|e| write_err(e.error))?;
    Ok(())
}
