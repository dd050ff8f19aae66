//! The spec watcher: when to read `jobs/` again. Any batch of file events means "rescan and compare
//! content hashes" (the directory is watched, not the files, because editors that save by renaming
//! replace the file), and a periodic rescan covers what events miss. Must not read the specs itself
//! (the daemon's reload does).

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use notify::event::{MetadataKind, ModifyKind};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

/// Why [`SpecWatch::changed`] resolved when nothing reported a change: the periodic rescan.
pub const RESCAN: &str = "periodic rescan";

/// How long the watcher waits for a burst of events (an editor's save) to settle.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// How often the debouncer's thread looks for settled events. Its default, a quarter of the
/// debounce time, wakes an idle scheduler 20 times a second per watched directory.
const DEBOUNCE_TICK: Duration = Duration::from_millis(100);

/// While file events arrive, the periodic rescan is only a net for what they miss, and may cost at
/// most this share of a core: its period is the metadata pass's own duration times this, within
/// [`RESCAN_AT_MOST`].
const RESCAN_COST_SHARE: u32 = 1000;

/// The longest period between two rescans, however many specs there are.
const RESCAN_AT_MOST: Duration = Duration::from_secs(600);

/// The watcher as the loop polls it: file events where the platform gives them, a periodic rescan in
/// any case.
pub struct SpecWatch {
    _watcher: Option<SpecWatcher>,
    changes: Option<mpsc::Receiver<()>>,
    /// The home's `config.yaml`, watched through its directory (an editor replaces the file).
    _config_watcher: Option<SpecWatcher>,
    config_changes: Option<mpsc::Receiver<()>>,
    rescan: tokio::time::Interval,
    /// The period asked for: the rescan's shortest.
    rescan_every: Duration,
    /// The watched directory and its identity (device, inode) when the watch began: a directory
    /// replaced since (removed and made again, or a link moved) is no longer the one watched.
    dir: std::path::PathBuf,
    dir_identity: Option<(u64, u64)>,
    /// The rescan's period while file events come (see [`SpecWatch::pace`]), and when it last ran.
    stretched: Duration,
    last_rescan: tokio::time::Instant,
}

/// A directory's device and inode.
fn identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

impl SpecWatch {
    /// Starts watching `dir`, and rescanning every `rescan_every` (first after one period: the daemon
    /// has just loaded the specs). Must be called within the runtime.
    pub fn start(dir: &Path, config: &Path, rescan_every: Duration) -> Self {
        let (watcher, changes) = match watch(dir, None) {
            Some((watcher, changes)) => (Some(watcher), Some(changes)),
            None => (None, None),
        };
        let (config_watcher, config_changes) = match config
            .parent()
            .zip(config.file_name())
            .and_then(|(home, name)| watch(home, Some(name)))
        {
            Some((watcher, changes)) => (Some(watcher), Some(changes)),
            None => (None, None),
        };
        let mut rescan = tokio::time::interval(rescan_every);
        rescan.reset();
        let dir_identity = identity(dir);
        Self {
            dir: dir.to_owned(),
            dir_identity,
            stretched: rescan_every,
            last_rescan: tokio::time::Instant::now(),
            _watcher: watcher,
            changes,
            _config_watcher: config_watcher,
            config_changes,
            rescan,
            rescan_every,
        }
    }

    /// Sets the rescan's period from how long its metadata pass took (`pass`): the period asked
    /// for while that costs little, longer once the specs are many (at 100,000 files a pass takes
    /// about 0.3 s, so one every 30 s was 1 % of a core while nothing changed). Without file events
    /// (none on this platform, or the directory watched was replaced since) the rescan is the only
    /// way changes are seen, and keeps the period asked for.
    pub fn pace(&mut self, pass: Duration) {
        let period = pass
            .saturating_mul(RESCAN_COST_SHARE)
            .clamp(self.rescan_every, RESCAN_AT_MOST.max(self.rescan_every));
        if period != self.stretched {
            tracing::debug!("while file events come, the periodic rescan runs every {period:?}");
            self.stretched = period;
        }
        self.last_rescan = tokio::time::Instant::now();
    }

    /// Resolves when the specs should be read again, saying why.
    pub async fn changed(&mut self) -> &'static str {
        // Whether file events report the directory's changes: a watch was made, and the directory
        // is still the one it was made on. Looked at every `rescan_every` (one `stat`).
        let watched = self.changes.is_some() && self.dir_identity.is_some();
        let (dir, dir_identity) = (&self.dir, self.dir_identity);
        let events_come = || watched && identity(dir) == dir_identity;
        let (stretched, last_rescan) = (self.stretched, self.last_rescan);
        let rescan = &mut self.rescan;
        let changes = &mut self.changes;
        let config_changes = &mut self.config_changes;
        let events = async {
            match changes.as_mut() {
                Some(changes) => changes.recv().await,
                None => std::future::pending().await,
            }
        };
        let config = async {
            match config_changes.as_mut() {
                Some(changes) => changes.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(events, config);
        loop {
            tokio::select! {
                Some(()) = &mut events => return "spec change",
                Some(()) = &mut config => return "config change",
                _ = rescan.tick() => {
                    if !events_come() || last_rescan.elapsed() >= stretched {
                        return RESCAN;
                    }
                }
            }
        }
    }
}

/// Keeps the watch alive while held.
pub struct SpecWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// Starts watching `dir` (only its entry named `only`, when given); each settled batch of changes
/// sends one `()`. Returns `None` (and the caller relies on its periodic rescan) where the platform
/// cannot watch.
pub fn watch(dir: &Path, only: Option<&OsStr>) -> Option<(SpecWatcher, mpsc::Receiver<()>)> {
    let (tx, rx) = mpsc::channel(1);
    let whole_dir = only.is_none();
    let only = only.map(OsStr::to_owned);
    let handler = move |result: DebounceEventResult| {
        // Reading the specs (which every reload does) produces access events; only a change to the
        // directory's contents is worth a rescan, or the scheduler would wake itself forever. In the
        // home's root only the config counts: logs and the store's files change there all the time.
        let relevant = |event: &notify_debouncer_full::DebouncedEvent| {
            only.as_ref().is_none_or(|name| {
                event
                    .paths
                    .iter()
                    .any(|path| path.file_name() == Some(name.as_os_str()))
            })
        };
        let changed = match &result {
            Ok(events) => events
                .iter()
                .any(|event| is_change(&event.kind) && relevant(event)),
            Err(_) => true,
        };
        if changed {
            // A full channel already holds a pending rescan: nothing is lost by dropping this one.
            let _ = tx.try_send(());
        }
    };
    let mut debouncer = match new_debouncer(DEBOUNCE, Some(DEBOUNCE_TICK), handler) {
        Ok(debouncer) => debouncer,
        Err(e) => {
            tracing::warn!(
                "cannot watch {}: {e}; relying on the periodic rescan",
                dir.display()
            );
            return None;
        }
    };
    if whole_dir && let Err(e) = std::fs::create_dir_all(dir) {
        tracing::warn!("cannot create {}: {e}", dir.display());
    }
    if let Err(e) = debouncer.watch(dir, RecursiveMode::NonRecursive) {
        tracing::warn!(
            "cannot watch {}: {e}; relying on the periodic rescan",
            dir.display()
        );
        return None;
    }
    Some((
        SpecWatcher {
            _debouncer: debouncer,
        },
        rx,
    ))
}

fn is_change(kind: &EventKind) -> bool {
    match kind {
        // A chmod or chown counts (a spec refused for its permissions is fixed by one, and the
        // periodic rescan may be minutes away); a read's access time does not.
        EventKind::Access(_)
        | EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime | MetadataKind::WriteTime,
        )) => false,
        EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Any
        | EventKind::Other => true,
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, CreateKind, DataChange, RenameMode};

    use super::*;

    #[test]
    fn reads_do_not_count_as_changes() {
        assert!(!is_change(&EventKind::Access(AccessKind::Any)));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(
            is_change(&EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any))),
            "inotify's IN_ATTRIB: a chmod or chown"
        );
        assert!(is_change(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Permissions
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(
            DataChange::Content
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
    }
}
