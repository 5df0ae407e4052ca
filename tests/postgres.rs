//! Invariants of the PostgreSQL tracker beyond the conformance suite, on
//! servers the tests start: many threads claim each task once, concurrent
//! adds of the same keys do not fail, the claim's plan uses its index
//! whatever the tasks done, settings are stored, a schema of another
//! version is refused, and an immediate server restart mid-run loses no
//! acknowledged completion while the workers reconnect on their own.

mod pg_server;

use serde_json::{Map, json};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;
use tastypod::{Claim, ErrorKind, PgTracker, TaskQueue, TrackerOptions};

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("task-{i:05}")).collect()
}

fn add(q: &PgTracker, keys: &[String]) -> usize {
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    q.add_keys(&refs).unwrap()
}

#[test]
fn threads_claim_each_task_once() {
    let Some(server) = pg_server::shared() else {
        return;
    };
    let q = PgTracker::open(&server.url("threads")).unwrap();
    let all = keys(3000);
    for chunk in all.chunks(700) {
        add(&q, chunk);
    }
    let given = Mutex::new(HashSet::new());
    std::thread::scope(|s| {
        for w in 0..8 {
            let q = q.with_owner(&format!("w{w}"));
            let given = &given;
            s.spawn(move || {
                loop {
                    let leases = if w % 2 == 0 {
                        match q.claim_wait(Duration::from_secs(5)).unwrap() {
                            Claim::Task(lease) => vec![lease],
                            Claim::Wait(_) => continue,
                            Claim::Finished => return,
                        }
                    } else {
                        let leases = q.claim_many(17).unwrap();
                        if leases.is_empty() {
                            match q.claim().unwrap() {
                                Claim::Task(lease) => vec![lease],
                                Claim::Wait(_) => continue,
                                Claim::Finished => return,
                            }
                        } else {
                            leases
                        }
                    };
                    for lease in &leases {
                        assert!(
                            given.lock().unwrap().insert(lease.key.clone()),
                            "{} handed out twice",
                            lease.key
                        );
                        assert_eq!(lease.try_number, 1);
                    }
                    let items: Vec<_> = leases
                        .into_iter()
                        .map(|l| (l, Map::from_iter([("by".into(), json!(w))])))
                        .collect();
                    assert!(q.complete_many(&items).unwrap().into_iter().all(|ok| ok));
                }
            });
        }
    });
    assert_eq!(given.lock().unwrap().len(), 3000);
    let c = q.counts().unwrap();
    assert_eq!(
        (c.total, c.done, c.todo, c.claimed, c.tries),
        (3000, 3000, 0, 0, 3000)
    );
}

#[test]
fn concurrent_adds_of_the_same_keys_add_each_once() {
    let Some(server) = pg_server::shared() else {
        return;
    };
    let q = PgTracker::open(&server.url("adds")).unwrap();
    let all = keys(2000);
    let added: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let q = q.clone();
                let mut mine = all.clone();
                // Each thread adds the same keys in an order of its own.
                mine.rotate_left(t * 500);
                if t % 2 == 1 {
                    mine.reverse();
                }
                s.spawn(move || mine.chunks(250).map(|c| add(&q, c)).sum::<usize>())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(added, 2000);
    assert_eq!(q.counts().unwrap().total, 2000);
}

#[test]
fn the_claim_uses_its_index_whatever_the_tasks_done() {
    let Some(server) = pg_server::shared() else {
        return;
    };
    let q = PgTracker::open(&server.url("plan")).unwrap();
    add(&q, &keys(20_000));
    // 15,000 done, 5,000 to do.
    for _ in 0..15 {
        let leases = q.claim_many(1000).unwrap();
        let items: Vec<_> = leases.into_iter().map(|l| (l, Map::new())).collect();
        q.complete_many(&items).unwrap();
    }
    assert_eq!(q.counts().unwrap().todo, 5000);
    let plan = q.explain_claim(1).unwrap();
    assert!(
        plan.contains("Index Scan using tastypod_tasks_") && plan.contains("_claim on"),
        "{plan}"
    );
    assert!(!plan.contains("Seq Scan"), "{plan}");
}

#[test]
fn settings_are_stored_and_raising_the_try_limit_makes_exhausted_tasks_to_do() {
    let Some(server) = pg_server::shared() else {
        return;
    };
    let url = server.url("settings");
    let q = TrackerOptions::new()
        .max_tries(1)
        .lease(Duration::from_secs(7))
        .open_postgres(&url)
        .unwrap();
    q.add_keys(&["a"]).unwrap();
    let lease = q.claim().unwrap().task().unwrap();
    q.release_claim(&lease, None, Map::new()).unwrap();
    assert_eq!(q.claim().unwrap(), Claim::Finished);
    assert_eq!(q.counts().unwrap().exhausted, 1);
    let again = PgTracker::open(&url).unwrap();
    assert_eq!(
        (again.max_tries(), again.lease_length()),
        (1, Duration::from_secs(7))
    );
    let raised = TrackerOptions::new()
        .max_tries(2)
        .open_postgres(&url)
        .unwrap();
    assert_eq!(raised.counts().unwrap().todo, 1);
    assert_eq!(raised.claim().unwrap().task().unwrap().try_number, 2);
    assert_eq!(
        PgTracker::open(&url).unwrap().lease_length(),
        Duration::from_secs(7)
    );
}

#[test]
fn a_schema_of_another_version_is_refused() {
    let Some(server) = pg_server::own() else {
        return;
    };
    let url = server.url("version");
    PgTracker::open(&url).unwrap();
    let mut client = postgres::Client::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            server.port
        ),
        postgres::NoTls,
    )
    .unwrap();
    client
        .batch_execute("UPDATE tastypod_schema SET version = 99")
        .unwrap();
    let err = PgTracker::open(&url).unwrap_err();
    assert!(err.to_string().contains("schema version 99"), "{err}");
    assert!(matches!(err.kind(), ErrorKind::InvalidOption { .. }));
}

#[test]
fn an_immediate_server_restart_loses_no_acknowledged_completion() {
    let Some(server) = pg_server::own() else {
        return;
    };
    let url = server.url("restart");
    let q = TrackerOptions::new()
        .lease(Duration::from_secs(2))
        .open_postgres(&url)
        .unwrap();
    add(&q, &keys(1500));
    let acknowledged = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..4 {
            let q = q.with_owner(&format!("w{w}"));
            let (acknowledged, errors) = (&acknowledged, &errors);
            s.spawn(move || {
                loop {
                    let lease = match q.claim_wait(Duration::from_secs(30)) {
                        Ok(Claim::Task(lease)) => lease,
                        Ok(Claim::Wait(_)) => continue,
                        Ok(Claim::Finished) => return,
                        Err(e) => return errors.lock().unwrap().push(e.to_string()),
                    };
                    std::thread::sleep(Duration::from_millis(1));
                    match q.complete(&lease, Map::new()) {
                        Ok(()) => acknowledged.lock().unwrap().push(lease.key),
                        Err(e) => return errors.lock().unwrap().push(e.to_string()),
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(400));
        let before = acknowledged.lock().unwrap().len();
        server.restart_immediately().unwrap();
        assert!(
            before > 0 && before < 1500,
            "the restart came mid-run ({before} done)"
        );
    });
    assert_eq!(errors.into_inner().unwrap(), Vec::<String>::new());
    let acknowledged = acknowledged.into_inner().unwrap();
    let unique: HashSet<&String> = acknowledged.iter().collect();
    assert_eq!(unique.len(), acknowledged.len(), "a task completed twice");
    assert_eq!(acknowledged.len(), 1500, "every task completed once");
    for key in &acknowledged {
        assert!(q.state(key).unwrap().unwrap().done, "{key} lost");
    }
    assert_eq!(q.counts().unwrap().done, 1500);
}

#[test]
fn every_handle_counts_with_the_try_limit_stored_last() {
    let Some(server) = pg_server::shared() else {
        return;
    };
    let url = server.url("limit");
    let old = TrackerOptions::new()
        .max_tries(1)
        .open_postgres(&url)
        .unwrap();
    old.add_keys(&["a"]).unwrap();
    // Another process raises the limit while `old` is open.
    let new = TrackerOptions::new()
        .max_tries(3)
        .open_postgres(&url)
        .unwrap();
    let lease = old.claim().unwrap().task().unwrap();
    old.release_claim(&lease, None, Map::new()).unwrap();
    assert_eq!(old.counts().unwrap().exhausted, 0, "limit 3, one try made");
    assert_eq!(new.claim().unwrap().task().unwrap().try_number, 2);
}
