//! Criterion benchmarks of the four core workloads, each beside a raw
//! baseline measured in the same run, so every figure is also a ratio.
//!
//! W1 load: 200,000 new keys, one sync. W2 tracker updates: set `_done` and
//! `_tries` on 200,000 keys through `get_mut`, a sync every 1,000. W3 reopen:
//! open a 1,000,000-key log and visit every key and value text in order.
//! W4 durable single ops: 2,000 times insert then sync.
//!
//! Run: `cargo bench --bench workloads` (peak memory: `--bench footprint`).

#[path = "common.rs"]
mod common;

use common::*;
use criterion::{BatchSize, Criterion, black_box, criterion_group, criterion_main};
use std::time::Duration;
use tastypod::{Pod, PodOptions};

const W1_KEYS: usize = 200_000;
const W3_KEYS: usize = 1_000_000;
const W4_OPS: usize = 2_000;

fn w1_load(c: &mut Criterion) {
    let mut g = c.benchmark_group("w1_load_200k");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let input = || -> (tempfile::TempDir, Vec<(String, serde_json::Value)>) {
        (
            tempfile::tempdir().unwrap(),
            (0..W1_KEYS).map(|i| (key(i), value(i))).collect(),
        )
    };
    // The raw baseline and `insert_ref` serialize borrowed values; the
    // input is dropped after the measurement (returned to criterion).
    g.bench_function("raw", |b| {
        b.iter_batched(
            input,
            |(dir, data)| {
                let mut log = RawLog::create(&dir.path().join("raw.jsonl"));
                for (k, v) in &data {
                    log.append(k, v);
                }
                log.sync();
                (dir, data)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("tastypod", |b| {
        b.iter_batched(
            input,
            |(dir, data)| {
                let mut pod: Pod = Pod::open(dir.path().join("w1.pod")).unwrap();
                pod.hold();
                for (k, v) in &data {
                    pod.insert_ref(k, v).unwrap();
                }
                pod.sync().unwrap();
                (dir, pod, data)
            },
            BatchSize::PerIteration,
        )
    });
    // `insert` takes the values, so dropping them is measured too.
    g.bench_function("tastypod_owned", |b| {
        b.iter_batched(
            input,
            |(dir, data)| {
                let mut pod: Pod = Pod::open(dir.path().join("w1.pod")).unwrap();
                pod.hold();
                for (k, v) in data {
                    pod.insert(&k, v).unwrap();
                }
                pod.sync().unwrap();
                (dir, pod)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn w2_updates(c: &mut Criterion) {
    let mut g = c.benchmark_group("w2_updates_200k");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let template = tempfile::tempdir().unwrap();
    let store = template.path().join("w2.pod");
    write_store(&store, W1_KEYS);
    let keys: Vec<String> = (0..W1_KEYS).map(key).collect();
    g.bench_function("raw", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let mut log = RawLog::create(&dir.path().join("raw.jsonl"));
                for (i, k) in keys.iter().enumerate() {
                    let mut v = value(i);
                    v["_done"] = true.into();
                    v["_tries"] = 1.into();
                    log.append(k, &v);
                    if (i + 1) % 1000 == 0 {
                        log.sync();
                    }
                }
                log.sync();
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("tastypod", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("w2.pod");
                std::fs::create_dir(&path).unwrap();
                std::fs::copy(
                    store.join(tastypod::LOG_FILE),
                    path.join(tastypod::LOG_FILE),
                )
                .unwrap();
                let pod: Pod = PodOptions::new().open(&path).unwrap();
                (dir, pod)
            },
            |(dir, mut pod)| {
                for (i, k) in keys.iter().enumerate() {
                    let v = pod.get_mut(k).unwrap().unwrap();
                    v["_done"] = true.into();
                    v["_tries"] = 1.into();
                    if (i + 1) % 1000 == 0 {
                        pod.sync().unwrap();
                    }
                }
                pod.sync().unwrap();
                (dir, pod)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn w3_reopen(c: &mut Criterion) {
    let mut g = c.benchmark_group("w3_reopen_1m");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.jsonl");
    let store = dir.path().join("w3.pod");
    write_raw(&raw, W3_KEYS);
    write_store(&store, W3_KEYS);
    g.bench_function("raw", |b| {
        b.iter(|| {
            let records = raw_replay(&raw);
            let mut n = 0usize;
            for (k, v) in &records {
                n += k.len() + v.get().len();
            }
            black_box(n)
        })
    });
    // A writable open, as the peers harness makes: it maps the log and
    // reads the hint file its creation left; a read-only one (no lock)
    // replays and copies every record.
    for (name, read_only) in [("tastypod", false), ("tastypod_read_only", true)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let pod: Pod = PodOptions::new().read_only(read_only).open(&store).unwrap();
                let mut n = 0usize;
                for entry in pod.iter_json() {
                    let (k, v) = entry.unwrap();
                    n += k.len() + v.len();
                }
                black_box(n)
            })
        });
    }
    g.finish();
}

fn w4_single_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("w4_durable_ops_2000");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("raw", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let mut log = RawLog::create(&dir.path().join("raw.jsonl"));
                for i in 0..W4_OPS {
                    log.append(&key(i), &value(i));
                    log.sync();
                }
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("tastypod", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let pod: Pod = Pod::open(dir.path().join("w4.pod")).unwrap();
                (dir, pod)
            },
            |(dir, mut pod)| {
                for i in 0..W4_OPS {
                    pod.insert(&key(i), value(i)).unwrap();
                    pod.sync().unwrap();
                }
                (dir, pod)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, w1_load, w2_updates, w3_reopen, w4_single_ops);
criterion_main!(benches);
