//! Ownership of a home by its one scheduler: an exclusive flock on the home directory itself, held for
//! as long as the scheduler runs. The kernel releases it when the process ends, however it ends, so a
//! stale lock cannot exist; and unlike a lock file, the home cannot be unlinked from under a running
//! scheduler (deleting `db/` once let a second scheduler in beside the first). `db/scheduler.lock`
//! holds the owner's `pid@host`, for messages only. This module also notices a store file that was
//! deleted or replaced while the scheduler had it open.

use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::artifacts::rundir::{link_refused, no_follow, open_read};
use crate::error::{Error, Result};
use crate::home::Home;

pub struct OwnerLock {
    _home: File,
}

impl OwnerLock {
    /// Takes the lock or fails at once with `scheduler_already_running`, naming the holder.
    pub fn acquire(home: &Home, me: &str) -> Result<Self> {
        let root = home.root();
        let dir = File::open(root).map_err(|e| Error::io("open the home", root, e))?;
        // `jobsctl status` takes a shared lock for an instant to see whether a scheduler holds it, and a child
        // between fork and exec holds a copy for an instant too: only a lock held for longer than a
        // few such instants is another scheduler.
        let mut tries = 0;
        loop {
            match dir.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if tries < 10 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::SchedulerAlreadyRunning {
                        owner: read_owner_name(&home.scheduler_lock_path()),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("lock the home", root, e)),
            }
        }
        let path = home.scheduler_lock_path();
        // Owner-only whatever the umask: `db/` also holds the store, whose specs the scheduler runs.
        if let Some(db) = path.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(db)
                .map_err(|e| Error::io("create", db, e))?;
        }
        let written = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(no_follow())
            .open(&path)
            .map_err(|e| link_refused(&path, e))
            .and_then(|mut file| {
                file.set_len(0)?;
                file.seek(SeekFrom::Start(0))?;
                file.write_all(me.as_bytes())?;
                file.flush()
            });
        written.map_err(|e| Error::io("write the scheduler lock", &path, e))?;
        Ok(Self { _home: dir })
    }

    /// The `pid@host` of the live scheduler of `home`, if one holds it.
    pub fn holder(home: &Home) -> Option<String> {
        let dir = File::open(home.root()).ok()?;
        // A shared lock for the probe: an exclusive one, held for the probe's instant, made a second
        // command probing at that instant believe a scheduler owned the home (two `jobsctl run` of a
        // new home, one refused with `store_replaced`). Only the scheduler's exclusive lock blocks
        // this, and the scheduler's own `acquire` waits out a probe's instant.
        match dir.try_lock_shared() {
            Err(TryLockError::WouldBlock) => Some(read_owner_name(&home.scheduler_lock_path())),
            _ => None,
        }
    }
}

/// The owner's name as written in `db/scheduler.lock`; the winner writes it just after taking the
/// lock, so a moment is allowed for it.
fn read_owner_name(path: &Path) -> String {
    let mut owner = String::new();
    for _ in 0..20 {
        owner.clear();
        if let Ok(mut file) = open_read(path) {
            let _ = file.read_to_string(&mut owner);
        }
        if !owner.trim().is_empty() {
            return owner.trim().chars().take(200).collect();
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    "unknown process (db/scheduler.lock does not name it)".into()
}

/// The identity (device and inode) of the store file the scheduler opened, to notice when the file at
/// its path is no longer that one: deleted (`rm -rf db/`) or replaced (a restore over a live store).
/// Writing on into an unlinked file would lose every record while the scheduler looks healthy.
pub struct StoreIdentity {
    /// The SQLite file and its device and inode; `None` for a PostgreSQL store, which no file names.
    file: Option<(PathBuf, u64, u64)>,
}

impl StoreIdentity {
    pub fn of(location: &crate::store::Location) -> Result<Self> {
        let crate::store::Location::Sqlite(path) = location else {
            return Ok(Self { file: None });
        };
        let meta = std::fs::metadata(path).map_err(|e| Error::io("inspect the store", path, e))?;
        Ok(Self {
            file: Some((path.to_owned(), meta.dev(), meta.ino())),
        })
    }

    /// `Ok` while the path still names the file opened; `store_replaced` otherwise.
    pub fn check(&self) -> Result<()> {
        let Some((path, dev, ino)) = &self.file else {
            return Ok(());
        };
        let what = match std::fs::metadata(path) {
            Ok(meta) if meta.dev() == *dev && meta.ino() == *ino => return Ok(()),
            Ok(_) => "replaced by another file",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "deleted",
            // Another failure to look (a permission change, say) proves nothing either way.
            Err(_) => return Ok(()),
        };
        Err(Error::StoreReplaced {
            path: path.clone(),
            what,
        })
    }
}
