//! A run directory, `runs/<job_id>/<seq>/`, created owner-only, and its `.lock`: held (flock) by the
//! process executing the run for as long as it runs. flock is released by the kernel when its holder
//! exits, even by SIGKILL, so a free lock on an unfinished run means its owner is gone.

use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::home::Home;
use crate::spec::load::is_valid_id;

pub const LOCK_FILE: &str = ".lock";
pub const RECEIPT_FILE: &str = "run_receipt.json";
pub const EVENTS_FILE: &str = "events.jsonl";
pub const SUMMARY_FILE: &str = "summary.md";
pub const STDOUT_FILE: &str = "stdout.log";
pub const STDERR_FILE: &str = "stderr.log";

/// Where run directories the store does not know are moved: `runs/<job>/.orphaned/<seq>`. Not a
/// number, so nothing that walks runs (prune's leftovers, `tail`, the torture checks) takes it for a run.
pub const SET_ASIDE_DIR: &str = ".orphaned";

/// A run directory as the store records it: relative to the home, so that a home moved elsewhere
/// (or restored on another host) still finds its runs.
pub fn stored_path(job_id: &str, seq: i64) -> String {
    format!("runs/{job_id}/{seq}")
}

/// Where a run directory the store recorded (see [`stored_path`]) lies.
pub fn resolve(home: &Home, stored: &str) -> PathBuf {
    home.root().join(stored)
}

/// `runs/<job_id>/`: the job's run directories and its `scheduler.jsonl`.
pub fn job_dir(home: &Home, job_id: &str) -> PathBuf {
    home.runs_dir().join(job_id)
}

/// `runs/<job_id>/<seq>/`.
pub fn run_path(home: &Home, job_id: &str, seq: i64) -> PathBuf {
    job_dir(home, job_id).join(seq.to_string())
}

/// `runs/<job_id>/.orphaned/`, where the run directories the store does not know are set aside.
pub fn set_aside_root(home: &Home, job_id: &str) -> PathBuf {
    job_dir(home, job_id).join(SET_ASIDE_DIR)
}

/// The directories set aside under `runs/<job>/.orphaned/`, for `jobsctl prune` to report and remove.
pub fn set_aside_dirs(home: &Home, job_id: &str) -> Vec<PathBuf> {
    let job_dir = job_dir(home, job_id);
    if fs::symlink_metadata(&job_dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Vec::new();
    }
    let Ok(entries) = fs::read_dir(job_dir.join(SET_ASIDE_DIR)) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    dirs.sort();
    dirs
}

#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    /// Held for the life of this value.
    _lock: File,
}

impl RunDir {
    /// Creates `runs_root/<job_id>/<seq>/` (owner-only) and takes its lock. The directory must not exist
    /// yet: a leftover one (or a symlink planted there) is an error, never reused.
    pub fn create(runs_root: &Path, job_id: &str, seq: i64) -> Result<Self> {
        // Ids are validated when specs load; checking again here keeps every path under runs/.
        if !is_valid_id(job_id) || seq < 1 {
            return Err(Error::Internal {
                message: format!("refusing run directory for {job_id:?}#{seq}"),
            });
        }
        let job_dir = runs_root.join(job_id);
        let write_error = |path: &Path| {
            let path = path.to_owned();
            move |source: io::Error| Error::ArtifactWrite { path, source }
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&job_dir)
            .map_err(|e| {
                // "Already exists" here means something that is not a directory (a dangling symlink, a
                // file) stands where the job's directory should: that is not a taken run number.
                let e = if e.kind() == io::ErrorKind::AlreadyExists {
                    io::Error::new(
                        io::ErrorKind::NotADirectory,
                        "it exists but is not a usable directory",
                    )
                } else {
                    e
                };
                write_error(&job_dir)(e)
            })?;
        // A job's directory that is a link would put its runs wherever the link points: refuse it, as
        // the file itself (not where it leads) is what was checked. (`runs/` itself may be a link, to
        // keep runs on another disk.)
        ensure_real_dir(&job_dir).map_err(write_error(&job_dir))?;
        let path = job_dir.join(seq.to_string());
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(write_error(&path))?;
        let lock_path = path.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(write_error(&lock_path))?;
        lock.try_lock().map_err(|e| match e {
            TryLockError::Error(source) => Error::ArtifactWrite {
                path: lock_path.clone(),
                source,
            },
            TryLockError::WouldBlock => Error::Internal {
                message: format!("{} is locked already", lock_path.display()),
            },
        })?;
        Ok(Self { path, _lock: lock })
    }

    /// Creates and locks the run directory of a run being claimed in `home`, with the path the store
    /// records for it.
    pub fn create_for_claim(home: &Home, job_id: &str, seq: i64) -> Result<(Self, String)> {
        Ok((
            Self::create(&home.runs_dir(), job_id, seq)?,
            stored_path(job_id, seq),
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether some process holds the lock of the run directory at `path`. A missing directory or lock
    /// file has no holder.
    pub fn is_locked(path: &Path) -> bool {
        let Ok(file) = open_read(&path.join(LOCK_FILE)) else {
            return false;
        };
        matches!(file.try_lock(), Err(TryLockError::WouldBlock))
    }
}

/// `O_NOFOLLOW`: a link planted where one of our files should be makes the open fail (ELOOP) instead
/// of writing wherever the link points. Every file `jobs` creates or appends to under the home is
/// opened with it; directories an operator may have linked (`runs/`, `db/`) are above these files.
pub fn no_follow() -> i32 {
    // The flag is a small positive constant, so the conversion cannot lose bits.
    i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).unwrap_or(i32::MAX)
}

/// Explains a failed no-follow open: ELOOP means the file is a symbolic link; ENXIO (a FIFO opened
/// to write with no reader) that something other than a regular file stands there.
pub fn link_refused(path: &Path, source: io::Error) -> io::Error {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => io::Error::new(
            source.kind(),
            "it is a symbolic link; jobs never writes through a link under the home",
        ),
        Ok(meta) if !meta.is_file() && !meta.is_dir() => not_regular(),
        _ => source,
    }
}

fn not_regular() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "it is not a regular file (a FIFO, a directory, a device); jobs reads and writes only regular files under the home",
    )
}

/// Opens `path` with `options`, without following a link, and only if it is a regular file. A FIFO
/// planted where an artifact should be would otherwise hold the thread that opens it (an open to read
/// waits for a writer, one to write for a reader, a read for data) for as long as no one comes: a
/// server's blocking thread, and with it the process's exit. So the open does not wait (`O_NONBLOCK`),
/// the descriptor is checked, and then made blocking again for the reads and writes that follow.
pub fn open_regular(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    let file = options
        .custom_flags(no_follow() | non_blocking())
        .open(path)
        .map_err(|e| link_refused(path, e))?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    let flags = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)?;
    Ok(file)
}

/// `O_NONBLOCK`, for [`open_regular`].
fn non_blocking() -> i32 {
    // As for `no_follow`: a small positive constant.
    i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or(0)
}

/// Opens an existing regular file under the home for reading, without following a link.
pub fn open_read(path: &Path) -> io::Result<File> {
    open_regular(OpenOptions::new().read(true), path)
}

/// Opens an artifact for appending, creating it owner-only, never through a link and only if it is
/// a regular file.
pub fn open_append(path: &Path) -> Result<File> {
    open_regular(
        OpenOptions::new().append(true).create(true).mode(0o600),
        path,
    )
    .map_err(|source| Error::ArtifactWrite {
        path: path.to_owned(),
        source,
    })
}

/// Checks that `dir` (a directory `jobs` made below `runs/` or `db/`) is a real directory, not a link:
/// what was checked is the entry itself, not where a link would lead.
pub fn ensure_real_dir(dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "it is a symbolic link; a directory jobs writes into must be a real directory",
        )),
        Ok(meta) if !meta.is_dir() => Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "it exists but is not a directory",
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Replaces `path` with `bytes` atomically: a temporary file beside it, then a rename. With `durable`,
/// the data and the directory entry are synced first, so the new content survives a power cut.
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let fail = |source: io::Error| Error::ArtifactWrite {
        path: path.to_owned(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    let mut file = open_regular(
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600),
        &temp,
    )
    .map_err(fail)?;
    io::Write::write_all(&mut file, bytes).map_err(fail)?;
    if durable {
        file.sync_all().map_err(fail)?;
    }
    drop(file);
    crate::fault::point(crate::fault::Point::ReceiptBeforeRename);
    fs::rename(&temp, path).map_err(fail)?;
    if durable && let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_run_dir_is_locked_until_dropped() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = RunDir::create(root.path(), "job", 1).expect("create");
        let path = dir.path().to_owned();
        assert!(RunDir::is_locked(&path));
        drop(dir);
        assert!(!RunDir::is_locked(&path));
        assert!(
            !RunDir::is_locked(&root.path().join("job/2")),
            "no directory, no holder"
        );
    }

    #[test]
    fn run_dirs_are_owner_only_and_never_reused() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().expect("tempdir");
        let dir = RunDir::create(root.path(), "job", 7).expect("create");
        let mode = fs::metadata(dir.path()).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        drop(dir);
        let again = RunDir::create(root.path(), "job", 7).expect_err("exists");
        assert_eq!(again.code(), "artifact_write_failed");
    }

    #[test]
    fn ids_that_could_escape_runs_are_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        for id in ["../x", "a/b", "", ".."] {
            assert!(RunDir::create(root.path(), id, 1).is_err(), "{id:?}");
        }
    }

    fn fifo(path: &Path) {
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .expect("mkfifo");
    }

    #[test]
    fn a_fifo_where_a_file_should_be_is_refused_at_once_for_reading_and_writing() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("events.jsonl");
        fifo(&path);
        // Without O_NONBLOCK, each of these would wait for the other end for good.
        let read = open_read(&path).expect_err("a FIFO is not read");
        assert_eq!(read.kind(), io::ErrorKind::InvalidInput, "{read}");
        assert!(read.to_string().contains("not a regular file"), "{read}");
        let append = open_append(&path).expect_err("a FIFO is not appended to");
        assert!(
            append.to_string().contains("not a regular file"),
            "{append}"
        );
        fifo(&root.path().join(".r.json.tmp"));
        let atomic = write_atomic(&root.path().join("r.json"), b"x", false).expect_err("refused");
        assert!(
            atomic.to_string().contains("not a regular file"),
            "{atomic}"
        );
        let dir = open_read(root.path()).expect_err("a directory is not read as a file");
        assert_eq!(dir.kind(), io::ErrorKind::InvalidInput, "{dir}");
    }

    #[test]
    fn a_regular_file_opens_as_ever_and_blocking() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("summary.md");
        fs::write(&path, "text").expect("write");
        let mut file = open_read(&path).expect("open");
        let flags = rustix::fs::fcntl_getfl(&file).expect("flags");
        assert!(!flags.contains(rustix::fs::OFlags::NONBLOCK));
        let mut text = String::new();
        io::Read::read_to_string(&mut file, &mut text).expect("read");
        assert_eq!(text, "text");
        assert_eq!(
            open_read(&root.path().join("nope"))
                .expect_err("missing")
                .kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn atomic_writes_replace_whole_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let path = root.path().join("r.json");
        write_atomic(&path, b"first", true).expect("write");
        write_atomic(&path, b"second", false).expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        assert!(!root.path().join(".r.json.tmp").exists());
    }
}
