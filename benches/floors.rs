//! The peers harness's W1 and W2 loops (`../shared/peers`: the same key
//! and value texts, the same JSON round trip of each value in W2) on
//! tastypod, driven as the harness drives it (`Pod<Box<RawValue>>`,
//! `insert_json` and `get_json`), beside what the least store could do in
//! the same loops, measured in the same run:
//!
//! - `bare keyed`: a keyed store with nothing but a table and a log. Each
//!   record is copied once, into one growing buffer that is also where
//!   its value is read from; a hash table (foldhash, as tastypod's, each
//!   key's hash kept in the table) maps a key to its slot, compared by key; `commit` writes the new bytes with
//!   one call and `fdatasync`s. No check of the value, no checksum, no
//!   escaping, no lock, no torn-tail rule, no hint, no dirty tracking.
//! - `no lookup` (W2): the values by their number (no key is looked up),
//!   the same records written over newlines laid down before the clock
//!   starts (so no `fdatasync` updates the file's size): the harness's own
//!   work and the disk's, the floor of W2 for any store.
//! - `no lookup, appended` (W2): the same, each commit's records appended
//!   where the file grows, so each `fdatasync` also writes the file's new
//!   size. tastypod writes a sync of several records that crosses a page
//!   so (DESIGN.md, "The padded tail"): this is its floor in W2.
//! - `no lookup, pad ahead` (W2): the same, written over newlines the loop
//!   lays 1 MiB ahead as it goes: what a format that let a large sync go
//!   over padding would gain over `appended`.
//!
//! What lies between tastypod and `bare keyed` in W1 is what its
//! guarantees cost (the value rules' check, CRCs, batch framing, order
//! and dirty tracking). A goal relative to a peer (`W2 <= 0.5x redb`, say)
//! below `no lookup` measured beside that peer cannot be met by any store.
//!
//! `FLOORS_PHASES=1` also times W2's phases apart in the keyed stores
//! (`get`, the harness's JSON round trip, `set`, commits): the clock reads
//! slow the loop, so those runs are not the ones compared.
//!
//! Rounds are interleaved (each contender once a round, in a fresh
//! directory) and medians are printed, with each figure's ratio to the
//! first contender.
//!
//! Run: `cargo bench --bench floors` (`FLOORS_ROUNDS`, 5, `FLOORS_KEYS`,
//! 200000, `FLOORS_ONLY=W1` or `W2` for one of them, `FLOORS_PHASES=1`).

#[path = "common.rs"]
mod common;

use hashbrown::HashTable;
use serde_json::value::RawValue;
use std::fmt::Write as _;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};
use tastypod::{Pod, PodOptions};

/// The harness commits every this many updates in W2.
const BATCH: usize = 1000;

/// The harness's key text.
fn key_into(buf: &mut String, i: usize) {
    buf.clear();
    write!(buf, "task-{i:08}").unwrap();
}

/// The harness's value text.
fn value_into(buf: &mut Vec<u8>, i: usize) {
    buf.clear();
    write!(
        buf,
        r#"{{"url":"https://example.com/page/{i}","_tries":0,"_done":false,"_aborted":false}}"#
    )
    .unwrap();
}

/// The harness's W2 change of a value: parsed, two members set, written.
fn updated(cur: &[u8]) -> Vec<u8> {
    let mut doc: serde_json::Value = serde_json::from_slice(cur).unwrap();
    let o = doc.as_object_mut().unwrap();
    o.insert("_done".into(), true.into());
    o.insert("_tries".into(), 1.into());
    serde_json::to_vec(&doc).unwrap()
}

/// Appends the harness's log line for `key` and `value` to `out`; returns
/// where the key's and the value's bytes are in it (start, length).
fn push_record(out: &mut Vec<u8>, key: &str, value: &[u8]) -> Slot {
    out.extend_from_slice(br#"{"k":""#);
    let k = (out.len(), key.len());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(br#"","v":"#);
    let v = (out.len(), value.len());
    out.extend_from_slice(value);
    out.extend_from_slice(b"}\n");
    (k, v)
}

/// Per key: where its bytes and its value's bytes are in the log (start,
/// length).
type Slot = ((usize, usize), (usize, usize));

/// A keyed store with nothing but a table and a log: see the module's docs.
struct BareKeyed {
    file: File,
    /// Every record appended, in order; values are read from here.
    log: Vec<u8>,
    /// How much of `log` is in the file.
    written: usize,
    /// Each key's hash and slot number (the hash kept here, so growing
    /// the table and a probe read no slot).
    table: HashTable<(u64, u32)>,
    slots: Vec<Slot>,
    hasher: foldhash::fast::RandomState,
}

impl BareKeyed {
    fn create(path: &Path) -> Self {
        BareKeyed {
            file: File::create(path).unwrap(),
            log: Vec::new(),
            written: 0,
            table: HashTable::new(),
            slots: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let (slots, log) = (&self.slots, &self.log);
        self.table
            .find(hash, |&(h, i)| {
                let ((at, len), _) = slots[i as usize];
                h == hash && &log[at..at + len] == key
            })
            .map(|&(_, i)| i as usize)
    }

    fn set(&mut self, key: &str, value: &[u8]) {
        let hash = self.hasher.hash_one(key.as_bytes());
        let (k, v) = push_record(&mut self.log, key, value);
        match self.find(hash, key.as_bytes()) {
            Some(i) => self.slots[i].1 = v,
            None => {
                self.table
                    .insert_unique(hash, (hash, self.slots.len() as u32), |&(h, _)| h);
                self.slots.push((k, v));
            }
        }
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        let hash = self.hasher.hash_one(key.as_bytes());
        let (_, (at, len)) = self.slots[self.find(hash, key.as_bytes())?];
        Some(self.log[at..at + len].to_vec())
    }

    fn commit(&mut self) {
        self.file.write_all(&self.log[self.written..]).unwrap();
        self.file.sync_data().unwrap();
        self.written = self.log.len();
    }
}

/// A store the harness's loops drive, through its byte-level interface.
trait Store: Sized {
    fn open(dir: &Path) -> Self;
    fn set(&mut self, key: &str, value: &[u8]);
    fn get(&self, key: &str) -> Vec<u8>;
    fn commit(&mut self);
    /// The store as a new process would find it (the harness's W2 runs on
    /// a store built by another process).
    fn reopen(self, dir: &Path) -> Self;
    fn close(self);
}

impl Store for BareKeyed {
    fn open(dir: &Path) -> Self {
        BareKeyed::create(&dir.join("bare.jsonl"))
    }
    fn set(&mut self, key: &str, value: &[u8]) {
        BareKeyed::set(self, key, value);
    }
    fn get(&self, key: &str) -> Vec<u8> {
        BareKeyed::get(self, key).unwrap()
    }
    fn commit(&mut self) {
        BareKeyed::commit(self);
    }
    /// It has no replay: it goes on in memory.
    fn reopen(self, _dir: &Path) -> Self {
        self
    }
    fn close(self) {}
}

/// tastypod as the harness drives it: JSON text in and out, automatic
/// syncs held.
impl Store for Pod<Box<RawValue>> {
    fn open(dir: &Path) -> Self {
        let mut pod: Self = PodOptions::new().open(dir.join("store.pod")).unwrap();
        pod.hold();
        pod
    }
    fn set(&mut self, key: &str, value: &[u8]) {
        self.insert_json(key, std::str::from_utf8(value).unwrap())
            .unwrap();
    }
    fn get(&self, key: &str) -> Vec<u8> {
        self.get_json(key).unwrap().unwrap().as_bytes().to_vec()
    }
    fn commit(&mut self) {
        self.sync().unwrap();
    }
    fn reopen(self, dir: &Path) -> Self {
        Store::close(self);
        <Self as Store>::open(dir)
    }
    fn close(self) {
        Pod::close(self).unwrap();
    }
}

/// Sets the harness's `n` keys and values in `s`.
fn load(s: &mut impl Store, n: usize) {
    let (mut k, mut v) = (String::new(), Vec::new());
    for i in 0..n {
        key_into(&mut k, i);
        value_into(&mut v, i);
        s.set(&k, &v);
    }
}

/// The harness's W1: `n` new keys, one commit.
fn w1<S: Store>(dir: &Path, n: usize) -> Duration {
    let mut s = S::open(dir);
    let t = Instant::now();
    load(&mut s, n);
    s.commit();
    let took = t.elapsed();
    s.close();
    took
}

/// The harness's W2: every key of a store of `n` keys (loaded untimed)
/// read, changed and set, a commit every [`BATCH`].
fn w2<S: Store>(dir: &Path, n: usize) -> Duration {
    w2_timed::<S, false>(dir, n).total
}

/// Where the time of one W2 run went.
#[derive(Default, Clone, Copy)]
struct Phases {
    total: Duration,
    /// The store's `get`s.
    get: Duration,
    /// The harness's own JSON round trip of each value.
    update: Duration,
    /// The store's `set`s.
    set: Duration,
    /// The store's commits (its writes and fsyncs).
    commit: Duration,
}

/// [`w2`], with each phase timed apart if `PHASES` (the clock reads add
/// about 20% to the total, so the plain run is the one compared).
fn w2_timed<S: Store, const PHASES: bool>(dir: &Path, n: usize) -> Phases {
    let mut s = S::open(dir);
    load(&mut s, n);
    s.commit();
    let mut s = s.reopen(dir);
    let mut k = String::new();
    let mut p = Phases::default();
    let clock = || PHASES.then(Instant::now);
    let since = |t: Option<Instant>| t.map_or(Duration::ZERO, |t| t.elapsed());
    let t = Instant::now();
    for i in 0..n {
        key_into(&mut k, i);
        let at = clock();
        let cur = s.get(&k);
        p.get += since(at);
        let at = clock();
        let new = updated(&cur);
        p.update += since(at);
        let at = clock();
        s.set(&k, &new);
        p.set += since(at);
        if (i + 1) % BATCH == 0 {
            let at = clock();
            s.commit();
            p.commit += since(at);
        }
    }
    if !n.is_multiple_of(BATCH) {
        let at = clock();
        s.commit();
        p.commit += since(at);
    }
    p.total = t.elapsed();
    s.close();
    p
}

/// How the harness's W2 with no lookup lays its records in the file.
#[derive(Clone, Copy, PartialEq)]
enum Laid {
    /// Over newlines written (and fsynced) before the clock starts: no
    /// `fdatasync` updates the file's size (the floor for any store).
    OverPadding,
    /// At the end of the file, which grows: each `fdatasync` writes the
    /// new size too (ext4's journal), as it does for tastypod's syncs of
    /// several records across a page (DESIGN.md, "The padded tail").
    Appended,
    /// Over newlines the loop itself lays ahead, [`PAD_AHEAD`] bytes past
    /// the last record whenever less than a quarter of that is left, each
    /// growth made durable by the commit's `fdatasync`: what writing a
    /// large sync over padding would cost, were the format to allow it.
    PaddedAhead,
}

/// How far [`Laid::PaddedAhead`] lays newlines past the last record.
const PAD_AHEAD: u64 = 1 << 20;

/// The harness's W2 with no lookup: the values by number, each record
/// written as [`Laid`] says.
fn w2_no_lookup(dir: &Path, n: usize, laid: Laid) -> Duration {
    use std::os::unix::fs::FileExt;
    let file = File::create(dir.join("no-lookup.jsonl")).unwrap();
    let mut v = Vec::new();
    let mut values: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            value_into(&mut v, i);
            v.clone()
        })
        .collect();
    if laid == Laid::OverPadding {
        // Room for every update (each a little longer than its value).
        let room: usize = values.iter().map(|v| v.len() + 64).sum();
        (&file).write_all(&vec![b'\n'; room]).unwrap();
        file.sync_all().unwrap();
    }
    let (mut k, mut out, mut at) = (String::new(), Vec::new(), 0u64);
    let (newlines, mut padded) = (vec![b'\n'; PAD_AHEAD as usize], 0u64);
    let t = Instant::now();
    for (i, value) in values.iter_mut().enumerate() {
        key_into(&mut k, i);
        let new = updated(&value.clone());
        push_record(&mut out, &k, &new);
        *value = new;
        if (i + 1) % BATCH == 0 || i + 1 == n {
            file.write_all_at(&out, at).unwrap();
            at += out.len() as u64;
            out.clear();
            if laid == Laid::PaddedAhead && padded < at + PAD_AHEAD / 4 {
                let to = at + PAD_AHEAD;
                let from = padded.max(at);
                file.write_all_at(&newlines[..(to - from) as usize], from)
                    .unwrap();
                padded = to;
            }
            file.sync_data().unwrap();
        }
    }
    t.elapsed()
}

/// One contender's run of a workload: its directory and key count in, its
/// result out.
type Run<T = Duration> = fn(&Path, usize) -> T;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs each of `contenders` once a round, each time in a fresh directory,
/// for `rounds` rounds; gives each one's results, in round order.
fn interleaved<T>(contenders: &[(&str, Run<T>)], n: usize, rounds: usize) -> Vec<Vec<T>> {
    let mut results: Vec<Vec<T>> = contenders.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for ((_, run), mine) in contenders.iter().zip(&mut results) {
            let dir = tempfile::tempdir().unwrap();
            mine.push(run(dir.path(), n));
        }
    }
    results
}

/// Runs `contenders` interleaved for `rounds` rounds; prints medians and
/// the ratio of each to the first.
fn compare(name: &str, contenders: &[(&str, Run)], n: usize, rounds: usize) {
    let times = interleaved(contenders, n, rounds);
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    println!("{name} ({n} keys, medians of {rounds} interleaved rounds):");
    for ((label, _), m) in contenders.iter().zip(&medians) {
        println!(
            "  {label:<20} {:>8.1} ms  {:.2}x {}",
            m.as_secs_f64() * 1e3,
            m.as_secs_f64() / medians[0].as_secs_f64(),
            contenders[0].0
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this
    // without it, as a quick check that it works.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = common::env_or("FLOORS_KEYS", if quick { 2_000 } else { 200_000 });
    let rounds = common::env_or("FLOORS_ROUNDS", if quick { 1 } else { 5 }).max(1);
    let only = std::env::var("FLOORS_ONLY").unwrap_or_default();
    if only != "W2" {
        compare(
            "W1 load, one commit",
            &[
                ("bare keyed", w1::<BareKeyed>),
                ("tastypod", w1::<Pod<Box<RawValue>>>),
            ],
            n,
            rounds,
        );
    }
    if only != "W1" {
        compare(
            "W2 read-modify-write, a commit every 1000",
            &[
                ("bare keyed", w2::<BareKeyed>),
                ("no lookup", |d, n| w2_no_lookup(d, n, Laid::OverPadding)),
                ("no lookup, appended", |d, n| {
                    w2_no_lookup(d, n, Laid::Appended)
                }),
                ("no lookup, pad ahead", |d, n| {
                    w2_no_lookup(d, n, Laid::PaddedAhead)
                }),
                ("tastypod", w2::<Pod<Box<RawValue>>>),
            ],
            n,
            rounds,
        );
        if std::env::var_os("FLOORS_PHASES").is_some() {
            phases(n, rounds);
        }
    }
}

/// Where W2's time goes, in the keyed stores (`FLOORS_PHASES=1`).
fn phases(n: usize, rounds: usize) {
    let stores: [(&str, Run<Phases>); 2] = [
        ("bare keyed", w2_timed::<BareKeyed, true>),
        ("tastypod", w2_timed::<Pod<Box<RawValue>>, true>),
    ];
    let runs = interleaved(&stores, n, rounds);
    println!("W2 phases, each timed apart (medians of {rounds} interleaved rounds, ms):");
    println!("  store          total     get  update     set  commit");
    for ((label, _), runs) in stores.iter().zip(runs) {
        let ms =
            |f: fn(&Phases) -> Duration| median(runs.iter().map(f).collect()).as_secs_f64() * 1e3;
        println!(
            "  {label:<12} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1}",
            ms(|p| p.total),
            ms(|p| p.get),
            ms(|p| p.update),
            ms(|p| p.set),
            ms(|p| p.commit)
        );
    }
}
