//! `db/scheduler.lock`: held (flock) by the one scheduler of a home for as long as it runs. The kernel
//! releases it when the process ends, however it ends, so a stale lock cannot exist. The file holds
//! the owner's `pid@host`, for messages only.

use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};

pub struct OwnerLock {
    _file: File,
}

impl OwnerLock {
    /// Takes the lock or fails at once with `scheduler_already_running`, naming the holder.
    pub fn acquire(path: &Path, me: &str) -> Result<Self> {
        // Owner-only whatever the umask: `db/` also holds the store, whose specs the scheduler runs.
        if let Some(dir) = path.parent() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io("create", dir, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("open the scheduler lock", path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                // The winner writes its name just after taking the lock: give it a moment.
                let mut owner = String::new();
                for _ in 0..20 {
                    owner.clear();
                    let _ = file
                        .seek(SeekFrom::Start(0))
                        .and_then(|_| file.read_to_string(&mut owner));
                    if !owner.trim().is_empty() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                let owner = owner.trim();
                return Err(Error::SchedulerAlreadyRunning {
                    owner: if owner.is_empty() {
                        "unknown process".into()
                    } else {
                        owner.to_owned()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io("lock", path, e)),
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(me.as_bytes()))
            .and_then(|()| file.flush());
        written.map_err(|e| Error::io("write the scheduler lock", path, e))?;
        Ok(Self { _file: file })
    }

    /// The `pid@host` of the live scheduler holding the lock at `path`, if one does.
    pub fn holder(path: &Path) -> Option<String> {
        let mut file = File::open(path).ok()?;
        match file.try_lock() {
            Err(TryLockError::WouldBlock) => {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                Some(owner.trim().to_owned())
            }
            _ => None,
        }
    }
}
