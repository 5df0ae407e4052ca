//! Opening through the hint file and keeping it up to date
//! ([`crate::hint`]; DESIGN.md, "The hint file").

use super::Pod;
use crate::error::Result;
use crate::fsio::{LogMap, Storage};
use crate::hint::{self, Covered, HINT_FILE, HINT_TMP, Head};
use crate::index::Index;
use crate::options::Recovery;
use crate::replay::{self, CrcMarks, Replayed};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether an open read the log through its hint file
/// ([`RecoveryReport::hint`](crate::RecoveryReport::hint)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HintUse {
    /// The open read the whole log: there was no hint file (a log under
    /// 1 MiB gets none), or this open does not use one (a salvage).
    #[default]
    None,
    /// The hint file described the log's first `covered` bytes (checked
    /// against their CRC-32); the open replayed only the bytes after them.
    Used {
        /// The bytes of the log the hint described.
        covered: u64,
    },
    /// A hint file was there but did not describe this log, so the open
    /// read the whole log (and wrote a new hint): `why` says what was wrong
    /// (damaged, cut short, or stale: the log was compacted, repaired or
    /// changed since it was written).
    Ignored {
        /// What was wrong, as a phrase.
        why: String,
    },
}

/// What reading a hint file found.
enum Found<V> {
    /// No hint file.
    Absent,
    /// A hint that cannot be used, and why.
    Unusable(String),
    /// The index the hint describes, and what it covers.
    Usable(Box<Index<V>>, Covered, Option<Vec<u8>>),
}

impl<V> Pod<V>
where
    V: Serialize + DeserializeOwned,
{
    /// Replays the log through its hint file, if there is a usable one;
    /// `None` if the whole log must be read (the report says why).
    pub(super) fn replay_hinted(&mut self) -> Result<Option<Replayed<V>>> {
        // A salvage reads every line by its own rules.
        if self.opts.recovery == Recovery::Salvage {
            return Ok(None);
        }
        let storage = self.storage();
        let hint_path = self.dir.join(HINT_FILE);
        if !storage.exists(&hint_path).unwrap_or(false) {
            return Ok(None);
        }
        let log = self.log.path().to_path_buf();
        let Ok(Some((mut reader, log_len, map))) = storage.open_mapped(&log) else {
            return Ok(None);
        };
        let how = (self.opts.max_record, storage.allows_threads());
        match read_hint::<V>(&*storage, &hint_path, &mut reader, log_len, &map, how) {
            Found::Absent => Ok(None),
            Found::Unusable(why) => {
                self.report.hint = HintUse::Ignored { why };
                Ok(None)
            }
            Found::Usable(index, covered, settings) => {
                // A writable handle reads the rest under its lock, as a
                // whole replay would, values left in the map. A read-only
                // one (no lock) maps only the part the hint covers, whose
                // bytes no writer changes (DESIGN.md, "Mapped logs"), and
                // copies the rest.
                let rest_map = (!self.opts.read_only).then_some(map);
                let how = (log.as_path(), self.opts.max_record);
                let replayed =
                    replay::replay_after_hint(*index, reader, covered, settings, how, rest_map)?;
                let Some(replayed) = replayed else {
                    // The last batch was cut short: the whole log is read.
                    return Ok(None);
                };
                self.report.hint = HintUse::Used {
                    covered: covered.log_len,
                };
                self.hinted = Some(covered.log_len);
                Ok(Some(replayed))
            }
        }
    }

    /// Writes a hint file of the log as it now is, if the log is large
    /// enough to gain from one and the present hint (if any) is stale, and
    /// every live value is known to be where the hint would say. Best
    /// effort: a hint is only ever a shortcut, so a failure to write one is
    /// not an error (the temp file is removed).
    pub(super) fn refresh_hint(&mut self) {
        if self.opts.read_only || self.is_poisoned() || !self.log.is_attached() {
            return;
        }
        let log_len = self.log.len();
        if log_len < hint::MIN_LOG || self.hinted.is_some_and(|h| !hint::is_stale(h, log_len)) {
            return;
        }
        // The hint describes the file: what is staged is written first.
        if self.log.flush_staged().is_err() {
            return;
        }
        let Some(parts) = self.hint_now() else {
            return;
        };
        let storage = self.storage();
        let tmp = self.dir.join(HINT_TMP);
        let _ = storage.remove_file(&tmp);
        let written = storage.create_new(&tmp).and_then(|mut out| {
            out.append_parts(&parts.each_ref().map(Vec::as_slice))?;
            // No fsync: a hint a crash damaged fails its checksum.
            storage.rename(&tmp, &self.dir.join(HINT_FILE))
        });
        match written {
            Ok(()) => self.hinted = Some(log_len),
            Err(_) => {
                let _ = storage.remove_file(&tmp);
            }
        }
    }

    /// The hint of the log as it is now (in the three parts
    /// [`Encoder::finish`](hint::Encoder::finish) gives), if every live
    /// value's place in it is known. The log's CRC is computed on another
    /// thread while the hint is made (and given up if no hint can be made),
    /// from the last CRC this handle knows.
    fn hint_now(&self) -> Option<[Vec<u8>; 3]> {
        if self.log.has_staged() {
            // The file does not hold the log's last records yet.
            return None;
        }
        let log_len = self.log.len();
        let covered = Covered {
            log_len,
            log_crc: 0,
            lines: self.log.lines(),
            version: self.format,
        };
        let storage = self.storage();
        let (log, marks) = (self.log.path(), &self.crc_marks);
        let stop = AtomicBool::new(false);
        let (crc, hint) = if storage.allows_threads() {
            std::thread::scope(|s| {
                let crc = s.spawn(|| crc_of(&*storage, log, marks, log_len, &stop));
                let hint = self.index.to_hint(covered, self.settings.as_deref());
                if hint.is_none() {
                    stop.store(true, Ordering::Relaxed);
                }
                hint.map(|h| (crc.join().ok().and_then(Result::ok), h))
            })
        } else {
            self.index
                .to_hint(covered, self.settings.as_deref())
                .map(|h| (crc_of(&*storage, log, marks, log_len, &stop).ok(), h))
        }?;
        Some(hint.finish(Some(crc?)))
    }

    /// The hint a refresh would write for the log as it is now, whatever
    /// its size (for the fuzz target `hint`).
    #[cfg(feature = "sim")]
    pub(crate) fn hint_bytes(&self) -> Option<Vec<u8>> {
        self.hint_now().map(|parts| parts.concat())
    }

    /// Removes the hint file (best effort): the log it described was
    /// replaced.
    pub(super) fn drop_hint(&mut self) {
        self.hinted = None;
        // There may be none.
        let _ = self.storage().remove_file(&self.dir.join(HINT_FILE));
    }
}

/// Reads and checks the hint file at `path` against the log that `reader`
/// reads (from its start; `log_len` bytes, mapped as `map`): on success
/// the reader has read the bytes the hint covers. The log's CRC is
/// computed on another thread (if `threads`) while the hint is read and
/// the index built.
fn read_hint<V>(
    storage: &dyn Storage,
    path: &Path,
    reader: &mut Box<dyn Read + Send>,
    log_len: u64,
    map: &Arc<LogMap>,
    (max_record, threads): (usize, bool),
) -> Found<V> {
    let unusable = |why: &str| Found::Unusable(why.to_string());
    let (mut file, len) = match storage.open_read(path) {
        Ok((_, len)) if len > hint::max_len(log_len) => {
            return unusable("it is larger than a hint of this log can be");
        }
        Ok(found) => found,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Found::Absent,
        Err(e) => return Found::Unusable(format!("it cannot be read: {e}")),
    };
    let head = match Head::read(&mut file, len) {
        Ok(head) => head,
        Err(why) => return unusable(why),
    };
    let covered = head.covered;
    if covered.log_len > log_len {
        return unusable("the log is shorter than the part it describes");
    }
    if !hint::is_worth_using(covered.log_len, log_len) {
        return unusable("the log has grown far past the part it describes");
    }
    let never = AtomicBool::new(false);
    let check = |reader: &mut Box<dyn Read + Send>| crc_of_reader(reader, covered.log_len, &never);
    let build = |file: &mut Box<dyn Read + Send>| {
        let hint = head.read_rest(file)?;
        let settings = hint.settings.clone();
        Index::from_hint(hint, map, max_record, threads).map(|index| (index, settings))
    };
    let (crc, built) = if threads {
        std::thread::scope(|s| {
            let crc = s.spawn(|| check(reader));
            let built = build(&mut file);
            (crc.join().unwrap_or(None), built)
        })
    } else {
        (check(reader), build(&mut file))
    };
    if crc != Some(covered.log_crc) {
        return unusable("the log is not the one it was written for");
    }
    match built {
        Ok((index, settings)) => Found::Usable(Box::new(index), covered, settings),
        Err(why) => unusable(why),
    }
}

/// The CRC-32 of the first `len` bytes `reader` reads, if it reads that
/// many (and `stop` is not set meanwhile).
fn crc_of_reader(reader: &mut dyn Read, len: u64, stop: &AtomicBool) -> Option<u32> {
    let mut hasher = crc32fast::Hasher::new();
    hash_from_reader(&mut hasher, reader, len, stop)?;
    Some(hasher.finalize())
}

/// Adds the next `len` bytes `reader` reads to `hasher`, if it reads that
/// many (and `stop` is not set meanwhile).
fn hash_from_reader(
    hasher: &mut crc32fast::Hasher,
    reader: &mut dyn Read,
    len: u64,
    stop: &AtomicBool,
) -> Option<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = match reader.read(buf.get_mut(..want)?) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        };
        hasher.update(buf.get(..n)?);
        left -= n as u64;
    }
    Some(())
}

/// The CRC-32 of the log file's first `len` bytes: from the last of
/// `marks` (the CRCs of its first bytes at some lengths) at or before
/// `len`, reading only the bytes after it.
fn crc_of(
    storage: &dyn Storage,
    log: &Path,
    marks: &CrcMarks,
    len: u64,
    stop: &AtomicBool,
) -> std::io::Result<u32> {
    let (from, mut hasher) = marks
        .iter()
        .rev()
        .find(|(at, _)| *at <= len)
        .cloned()
        .unwrap_or_else(|| (0, crc32fast::Hasher::new()));
    let (mut reader, _) = storage.open_read_at(log, from)?;
    hash_from_reader(&mut hasher, &mut reader, len - from, stop)
        .ok_or_else(|| std::io::Error::other("the log is shorter than expected"))?;
    Ok(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use crate::index::ValueRef;
    use crate::{HintUse, Pod, PodOptions};
    use serde_json::{Value, json};

    /// Every live slot's key, value text and log line.
    fn slots(pod: &Pod<Value>) -> Vec<(String, Vec<u8>, u64)> {
        pod.slots()
            .map(|i| {
                let text = match pod.value_at(i) {
                    ValueRef::Text(t) => t.to_vec(),
                    ValueRef::Live(_) => panic!("a live value after an open"),
                };
                (pod.key_at(i).to_string(), text, pod.line_at(i))
            })
            .collect()
    }

    #[test]
    fn a_hinted_open_gives_every_slot_the_text_and_line_a_replay_gives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let mut pod: Pod<Value> = PodOptions::new().open(&path).unwrap();
        for i in 0..15_000 {
            pod.insert(&format!("k{i}"), json!({"n": i, "pad": "x".repeat(80)}))
                .unwrap();
        }
        for i in (0..15_000).step_by(9) {
            pod.insert(&format!("k{i}"), json!(i)).unwrap();
        }
        for i in (0..15_000).step_by(13) {
            pod.remove(&format!("k{i}")).unwrap();
        }
        pod.close().unwrap();
        same_through_the_hint(&path);
        // A compaction's log gets its hint at the close.
        let mut pod: Pod<Value> = PodOptions::new().open(&path).unwrap();
        pod.insert("after", json!(1)).unwrap();
        pod.compact().unwrap();
        pod.close().unwrap();
        same_through_the_hint(&path);
        // A small write after it leaves no hint at the close (its value was
        // copied out of the write): the next open reads the whole log and
        // writes one.
        let mut pod: Pod<Value> = PodOptions::new().open(&path).unwrap();
        pod.compact().unwrap();
        pod.insert("after the compaction", json!(2)).unwrap();
        pod.close().unwrap();
        let whole: Pod<Value> = PodOptions::new().open(&path).unwrap();
        assert_eq!(whole.recovery().hint, HintUse::None);
        drop(whole);
        same_through_the_hint(&path);
    }

    /// Opens `path` through its hint and checks every slot against a
    /// whole replay.
    fn same_through_the_hint(path: &std::path::Path) {
        let hinted: Pod<Value> = PodOptions::new().open(path).unwrap();
        assert!(
            matches!(hinted.recovery().hint, HintUse::Used { .. }),
            "{:?}",
            hinted.recovery().hint
        );
        let replayed = whole_replay(path);
        assert_eq!(slots(&hinted), slots(&replayed));
        assert_eq!(hinted.stats(), replayed.stats());
        // A read-only handle through the hint too.
        let reader: Pod<Value> = PodOptions::new().read_only(true).open(path).unwrap();
        assert!(matches!(reader.recovery().hint, HintUse::Used { .. }));
        assert_eq!(slots(&reader), slots(&replayed));
    }

    /// The log of `path` alone, in a store of its own, read whole.
    fn whole_replay(path: &std::path::Path) -> Pod<Value> {
        let alone = path.with_extension("alone");
        let _ = std::fs::remove_dir_all(&alone);
        std::fs::create_dir_all(&alone).unwrap();
        std::fs::copy(path.join(crate::LOG_FILE), alone.join(crate::LOG_FILE)).unwrap();
        let pod: Pod<Value> = PodOptions::new().read_only(true).open(&alone).unwrap();
        assert_eq!(pod.recovery().hint, HintUse::None);
        pod
    }

    #[test]
    fn a_background_compaction_leaves_the_hint_true() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let mut pod: Pod<Value> = PodOptions::new()
            .compaction(crate::Compaction::Auto {
                dead_fraction: 0.3,
                min_bytes: 256 << 10,
            })
            .sync_at(2_000)
            .open(&path)
            .unwrap();
        for round in 0..6 {
            for i in 0..12_000 {
                pod.insert(
                    &format!("k{i}"),
                    json!({"round": round, "pad": "y".repeat(90)}),
                )
                .unwrap();
            }
        }
        // A sync that may start a compaction, then records written to the
        // old log while it runs (the sync after them switches logs): their
        // texts' places in the old log are not their places in the new.
        pod.sync().unwrap();
        for i in 0..3_000 {
            pod.insert(&format!("k{i}"), json!({"last": i, "pad": "z".repeat(90)}))
                .unwrap();
        }
        pod.sync().unwrap();
        pod.close().unwrap();
        let hinted: Pod<Value> = PodOptions::new().open(&path).unwrap();
        let replayed = whole_replay(&path);
        assert_eq!(
            slots(&hinted),
            slots(&replayed),
            "{:?}",
            hinted.recovery().hint
        );
        drop(hinted);
        same_through_the_hint(&path);
    }
}
