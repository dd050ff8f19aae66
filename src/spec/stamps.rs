//! The spec files' stamps: for each file in `jobs/`, its metadata (device, inode, size, modification
//! and change times to the nanosecond) when its content had a given hash, kept in `db/spec-stamps`
//! so a command need not read and hash 100,000 unchanged files to know they are unchanged. Owns
//! that file's format and when an entry may be believed; must not decide what a spec is (the loader
//! does, from the content hash), and is only ever a shortcut: a missing, torn or foreign cache
//! means the files are read.

use std::collections::HashMap;
use std::fs::{Metadata, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::artifacts::rundir::{open_read, open_regular};
use crate::digest::fnv1a;

/// The first line of the file: its kind and format, then the time its entries are as of.
const HEADER: &str = "jobs spec stamps 2";

/// A file changed less than this before its metadata was taken may change again within the file
/// system's clock tick without moving its times: its entry is not believed (Git's "racy" entries).
/// The cache is written again, and then trusted, once the file is older than this when a load
/// begins.
const RACY_SECS: i64 = 2;

/// A file's metadata as far as a change to its content must move it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The later of its two times, in whole seconds.
    fn changed_secs(&self) -> i64 {
        self.mtime.0.max(self.ctime.0)
    }

    /// Whether the file had not changed for [`RACY_SECS`] when metadata taken after `as_of` was:
    /// then a later write moves its change time, whatever the clock's tick.
    fn settled_by(&self, as_of: i64) -> bool {
        self.changed_secs().saturating_add(RACY_SECS) <= as_of
    }
}

/// One file's entry: its stamp and the hash of its own bytes (before any defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    stamp: Stamp,
    own_hash: String,
}

/// The stamps read from `db/spec-stamps`, and whether the file should be written again.
#[derive(Debug, Default)]
pub struct Stamps {
    path: Option<PathBuf>,
    entries: HashMap<String, Entry>,
    /// The time the entries read are as of: the start of the load that took their metadata.
    as_of: i64,
    /// The start of this load (the clock read before any file is listed): what a cache written
    /// from it is as of.
    began: i64,
}

impl Stamps {
    /// No cache: every file is read.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads the cache at `path`; anything amiss with it (missing, not ours, torn) is an empty one.
    pub fn read(path: &Path) -> Self {
        // Before anything is listed: every stamp this load takes is from after it. A clock stepped
        // back makes entries look recent (they are read again), never the other way round.
        let began = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let mut stamps = Self {
            path: Some(path.to_owned()),
            began,
            ..Self::default()
        };
        let Ok(mut file) = open_read(path) else {
            return stamps;
        };
        let mut text = String::new();
        if file.read_to_string(&mut text).is_err() {
            return stamps;
        }
        if let Some((as_of, entries)) = parse(&text) {
            stamps.entries = entries;
            stamps.as_of = as_of;
        }
        stamps
    }

    /// Whether the cache has an entry for `name` at all.
    pub fn knows(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The hash of `name`'s own bytes, when the cache knows it at exactly this metadata and the entry
    /// is old enough to believe.
    pub fn own_hash(&self, name: &str, meta: &Metadata) -> Option<&str> {
        let entry = self.entries.get(name)?;
        let stamp = Stamp::of(meta);
        (entry.stamp == stamp && stamp.settled_by(self.as_of)).then_some(entry.own_hash.as_str())
    }

    /// Writes the cache again when `seen` (each file's name, stamp and own hash, as just loaded)
    /// differs from it or holds entries too recent to believe. A cache that cannot be written is
    /// left as it is: it is only a shortcut.
    pub fn save(&self, seen: &[(&str, Stamp, &str)]) {
        let Some(path) = &self.path else {
            return;
        };
        let same = seen.len() == self.entries.len()
            && seen.iter().all(|(name, stamp, hash)| {
                self.entries.get(*name).is_some_and(|e| {
                    e.stamp == *stamp && e.own_hash == *hash && stamp.settled_by(self.as_of)
                })
            });
        if same {
            return;
        }
        if let Err(e) = replace(path, render(self.began, seen).as_bytes()) {
            tracing::debug!("the spec stamps were not kept: {e}");
        }
    }
}

/// Replaces the cache through a temporary file of this process's own (several commands may save at
/// once, and two writing one temporary file could splice their lines), created new, never through
/// a link. Not synced: a cache lost to a power cut is rebuilt by the next command.
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    // A file of this name can only be a dead process's that had this pid.
    let _ = std::fs::remove_file(&temp);
    let written = open_regular(
        OpenOptions::new().write(true).create_new(true).mode(0o600),
        &temp,
    )
    .and_then(|mut file| file.write_all(bytes))
    .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// The check at the end of each line: the hash of what precedes it.
fn check_of(line: &str) -> String {
    format!("{:016x}", fnv1a(&[line.as_bytes()]))
}

fn render(as_of: i64, seen: &[(&str, Stamp, &str)]) -> String {
    let mut text = String::with_capacity(seen.len() * 96 + 64);
    text.push_str(&format!("{HEADER} {as_of}\n"));
    let mut count = 0usize;
    for (name, s, hash) in seen {
        // A name the line format cannot hold is simply read every time.
        if name.contains(['\t', '\n']) || hash.contains(['\t', '\n']) {
            continue;
        }
        let line = format!(
            "{name}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{hash}",
            s.dev, s.ino, s.size, s.mtime.0, s.mtime.1, s.ctime.0, s.ctime.1
        );
        let check = check_of(&line);
        text.push_str(&line);
        text.push('\t');
        text.push_str(&check);
        text.push('\n');
        count += 1;
    }
    text.push_str(&format!("end {count}\n"));
    text
}

/// The entries of a whole cache: `None` unless the header, every line and the closing count agree,
/// so a file cut short by a crash is never half believed.
fn parse(text: &str) -> Option<(i64, HashMap<String, Entry>)> {
    let mut lines = text.split_terminator('\n');
    let as_of: i64 = lines
        .next()?
        .strip_prefix(HEADER)?
        .strip_prefix(' ')?
        .parse()
        .ok()?;
    let mut entries = HashMap::new();
    for line in lines {
        // An entry always has tabs, whatever its file is named (`end 1.yaml` included).
        if !line.contains('\t') {
            let count = line.strip_prefix("end ")?;
            return (count.parse::<usize>().ok()? == entries.len()).then_some((as_of, entries));
        }
        let (body, check) = line.rsplit_once('\t')?;
        if check_of(body) != check {
            return None;
        }
        let fields: Vec<&str> = body.split('\t').collect();
        let [name, dev, ino, size, ms, mn, cs, cn, hash] = fields.as_slice() else {
            return None;
        };
        let stamp = Stamp {
            dev: dev.parse().ok()?,
            ino: ino.parse().ok()?,
            size: size.parse().ok()?,
            mtime: (ms.parse().ok()?, mn.parse().ok()?),
            ctime: (cs.parse().ok()?, cn.parse().ok()?),
        };
        entries.insert(
            (*name).to_owned(),
            Entry {
                stamp,
                own_hash: (*hash).to_owned(),
            },
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(secs: i64) -> Stamp {
        Stamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime: (secs, 4),
            ctime: (secs, 5),
        }
    }

    #[test]
    fn a_cache_reads_back_what_was_written() {
        let text = render(
            100,
            &[
                ("a.yaml", stamp(10), "00ff"),
                ("end 1.yml", stamp(11), "ff00"),
            ],
        );
        let (as_of, entries) = parse(&text).expect("a whole cache");
        assert_eq!(as_of, 100);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries["a.yaml"].stamp, stamp(10));
        assert_eq!(
            entries["end 1.yml"].own_hash, "ff00",
            "a name like the trailer"
        );
    }

    #[test]
    fn a_cache_cut_short_or_changed_is_not_believed_at_all() {
        let text = render(
            100,
            &[("a.yaml", stamp(10), "00ff"), ("b.yml", stamp(11), "ff00")],
        );
        let cut = &text[..text.len() - "end 2\n".len()];
        assert!(parse(cut).is_none(), "no closing count");
        let torn = &text[..text.find("b.yml").expect("second entry") + 8];
        assert!(parse(torn).is_none(), "a torn line");
        assert!(parse(&text.replace("end 2", "end 3")).is_none(), "count");
        assert!(
            parse(&text.replacen("00ff", "00fe", 1)).is_none(),
            "a line whose check does not match"
        );
        assert!(parse(&text.replace(HEADER, "jobs spec stamps 1")).is_none());
        assert!(parse(&text.replace(" 100\n", "\n")).is_none(), "no time");
        assert!(parse("").is_none());
    }

    #[test]
    fn an_entry_is_believed_only_at_the_same_metadata_and_once_settled_before_its_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "id: a\n").expect("write");
        let meta = std::fs::metadata(&file).expect("metadata");
        let now = Stamp::of(&meta);
        let mut stamps = Stamps::none();
        stamps.entries.insert(
            "a.yaml".into(),
            Entry {
                stamp: now,
                own_hash: "abc".into(),
            },
        );
        // Taken by a load that began when the file had just changed: it may change again unseen.
        stamps.as_of = now.changed_secs();
        assert_eq!(stamps.own_hash("a.yaml", &meta), None, "racy: just written");
        stamps.as_of = now.changed_secs() + RACY_SECS;
        assert_eq!(stamps.own_hash("a.yaml", &meta), Some("abc"));
        assert_eq!(stamps.own_hash("b.yaml", &meta), None, "another name");
        std::fs::write(&file, "id: b\n").expect("rewrite");
        let changed = std::fs::metadata(&file).expect("metadata");
        if Stamp::of(&changed) != now {
            assert_eq!(stamps.own_hash("a.yaml", &changed), None, "rewritten");
        }
        // Times at the end of the range never overflow into belief.
        let far = Stamp {
            mtime: (i64::MAX, 0),
            ..now
        };
        assert!(!far.settled_by(i64::MAX - 1));
    }

    #[test]
    fn a_cache_is_as_of_the_start_of_the_load_that_wrote_it_not_of_its_writing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("spec-stamps");
        let mut stamps = Stamps::read(&path);
        // The load began long before it saved (a slow machine, a suspended command): a file that
        // changed just before it began stays unbelieved, however late the cache is written.
        stamps.began = 1_000;
        stamps.save(&[("a.yaml", stamp(999), "00ff")]);
        let again = Stamps::read(&path);
        assert_eq!(again.as_of, 1_000);
        assert!(!stamp(999).settled_by(again.as_of));
    }

    #[test]
    fn saving_writes_only_what_changed_and_a_saved_cache_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("spec-stamps");
        let stamps = Stamps::read(&path);
        assert!(stamps.entries.is_empty(), "no file yet");
        stamps.save(&[("a.yaml", stamp(10), "00ff")]);
        let again = Stamps::read(&path);
        assert_eq!(again.entries.len(), 1);
        let written = std::fs::metadata(&path).expect("written").ino();
        // Old and unchanged: nothing to write.
        again.save(&[("a.yaml", stamp(10), "00ff")]);
        assert_eq!(
            std::fs::metadata(&path).expect("still there").ino(),
            written,
            "not replaced"
        );
    }
}
