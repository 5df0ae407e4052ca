//! The conformance suite of the tracker trait: what every backend of
//! [`TaskQueue`] must do, written once and run on each
//! (`tests/conformance_file.rs`; the PostgreSQL tracker runs it too).
//! Time is the backend's own clock, moved by the test: no test sleeps.

use serde_json::{Map, Value, json};
use std::time::Duration;
use tastypod::{Claim, ErrorKind, Lease, RetryDelay, TaskQueue};

/// What the suite needs of a backend.
pub trait Backend {
    type Queue: TaskQueue;
    /// A new, empty queue with these settings, claiming as `"first"`.
    fn make(&mut self, max_tries: u32, lease: Duration, retry: RetryDelay) -> Self::Queue;
    /// A second worker's handle on the same queue, claiming as `"second"`.
    fn second(&mut self, queue: &Self::Queue) -> Self::Queue;
    /// Moves the queue's clock on by `by`.
    fn advance(&mut self, queue: &Self::Queue, by: Duration);
}

const LEASE: Duration = Duration::from_secs(60);

fn fields(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn claim(q: &impl TaskQueue) -> Lease {
    match q.claim().unwrap() {
        Claim::Task(lease) => lease,
        other => panic!("expected a task, got {other:?}"),
    }
}

fn is_lost(r: tastypod::Result<impl std::fmt::Debug>) -> bool {
    matches!(
        r.map_err(|e| e.into_kind()),
        Err(ErrorKind::LeaseLost { .. })
    )
}

/// Runs every check on `backend`.
pub fn run_all(backend: &mut impl Backend) {
    claims_hand_out_each_task_once_in_order(backend);
    an_expired_lease_makes_the_task_claimable_with_the_try_counted(backend);
    a_lease_taken_over_is_fenced_out(backend);
    retry_delays_and_extending_a_lease(backend);
    out_of_tries_is_exhausted_and_abort_is_the_programs(backend);
    fields_merge_and_reserved_fields_are_refused(backend);
    counts_and_todo_keys_follow_every_step(backend);
    complete_many_completes_each_live_lease(backend);
    a_last_try_released_with_a_delay_is_exhausted_without_a_retry_time(backend);
}

pub fn claims_hand_out_each_task_once_in_order(b: &mut impl Backend) {
    let q = b.make(0, LEASE, RetryDelay::None);
    assert_eq!(q.claim().unwrap(), Claim::Finished, "empty");
    assert_eq!(q.add_keys(&["a", "b", "c", "a"]).unwrap(), 3);
    assert_eq!(q.add_keys(&["b", "d"]).unwrap(), 1, "only d is new");
    let first = claim(&q);
    assert_eq!((first.key.as_str(), first.try_number), ("a", 1));
    assert_eq!(first.owner, "first");
    let many = q.claim_many(2).unwrap();
    let keys: Vec<&str> = many.iter().map(|l| l.key.as_str()).collect();
    assert_eq!(keys, ["b", "c"]);
    let other = b.second(&q);
    assert_eq!(claim(&other).key, "d");
    match q.claim().unwrap() {
        Claim::Wait(until) => assert_eq!(until, first.until, "the earliest lease end"),
        other => panic!("all four are claimed: {other:?}"),
    }
    assert!(q.claim_many(5).unwrap().is_empty());
    for lease in [&first, &many[0], &many[1]] {
        q.complete(lease, Map::new()).unwrap();
    }
    assert!(
        matches!(q.claim().unwrap(), Claim::Wait(_)),
        "d is still claimed"
    );
    other
        .complete(
            &other.state("d").unwrap().unwrap().lease.unwrap(),
            Map::new(),
        )
        .unwrap();
    assert_eq!(q.claim().unwrap(), Claim::Finished);
    assert_eq!(
        q.claim_wait(Duration::from_millis(10)).unwrap(),
        Claim::Finished
    );
}

pub fn an_expired_lease_makes_the_task_claimable_with_the_try_counted(b: &mut impl Backend) {
    let q = b.make(3, LEASE, RetryDelay::None);
    q.add_keys(&["a"]).unwrap();
    let lease = claim(&q);
    assert_eq!(q.state("a").unwrap().unwrap().tries, 1);
    b.advance(&q, LEASE + Duration::from_secs(1));
    let again = claim(&b.second(&q));
    assert_eq!((again.key.as_str(), again.try_number), ("a", 2));
    assert_eq!(again.owner, "second");
    assert_eq!(q.state("a").unwrap().unwrap().tries, 2);
    assert_eq!(q.counts().unwrap().claimed, 1);
    drop(lease);
}

pub fn a_lease_taken_over_is_fenced_out(b: &mut impl Backend) {
    let q = b.make(0, LEASE, RetryDelay::None);
    q.add_keys(&["a", "b"]).unwrap();
    let late = claim(&q);
    b.advance(&q, LEASE * 2);
    let second = b.second(&q);
    let now = claim(&second);
    assert_eq!(now.key, "a");
    assert!(is_lost(q.complete(&late, Map::new())), "complete");
    assert!(is_lost(q.abort_claim(&late, Map::new())), "abort");
    assert!(is_lost(q.release_claim(&late, None, Map::new())), "release");
    assert!(is_lost(q.extend_claim(&late)), "extend");
    let state = q.state("a").unwrap().unwrap();
    assert!(!state.done && !state.aborted, "nothing changed");
    second
        .complete(&now, fields(&[("by", json!("second"))]))
        .unwrap();
    assert!(
        is_lost(second.complete(&now, Map::new())),
        "never completed twice"
    );
    assert_eq!(q.get("a").unwrap().unwrap()["by"], json!("second"));
    assert_eq!(q.counts().unwrap().done, 1);
    // A lease that expired with no other claim made since still counts.
    let b_lease = claim(&q);
    b.advance(&q, LEASE * 2);
    q.complete(&b_lease, Map::new()).unwrap();
    assert_eq!(q.counts().unwrap().done, 2);
}

pub fn retry_delays_and_extending_a_lease(b: &mut impl Backend) {
    let q = b.make(0, LEASE, RetryDelay::Fixed(Duration::from_secs(30)));
    q.add_keys(&["a"]).unwrap();
    let lease = claim(&q);
    q.release_claim(&lease, None, fields(&[("error", json!("timeout"))]))
        .unwrap();
    let state = q.state("a").unwrap().unwrap();
    assert!(state.lease.is_none() && state.not_before.is_some());
    assert_eq!(q.get("a").unwrap().unwrap()["error"], json!("timeout"));
    match q.claim().unwrap() {
        Claim::Wait(until) => assert_eq!(Some(until), state.not_before),
        other => panic!("the task waits for its retry: {other:?}"),
    }
    b.advance(&q, Duration::from_secs(31));
    let lease = claim(&q);
    assert_eq!(lease.try_number, 2);
    // A release with a delay of its own.
    q.release_claim(&lease, Some(Duration::from_secs(5)), Map::new())
        .unwrap();
    assert!(matches!(q.claim().unwrap(), Claim::Wait(_)));
    b.advance(&q, Duration::from_secs(6));
    let lease = claim(&q);
    // Extending keeps the task from a second worker past the first end.
    b.advance(&q, LEASE / 2);
    let extended = q.extend_claim(&lease).unwrap();
    assert!(extended.until > lease.until);
    b.advance(&q, LEASE / 2 + Duration::from_secs(1));
    assert!(matches!(b.second(&q).claim().unwrap(), Claim::Wait(_)));
    q.complete(&extended, Map::new()).unwrap();
}

pub fn out_of_tries_is_exhausted_and_abort_is_the_programs(b: &mut impl Backend) {
    let q = b.make(2, LEASE, RetryDelay::None);
    q.add_keys(&["flaky", "gone", "dies"]).unwrap();
    for _ in 0..2 {
        let lease = claim(&q);
        assert_eq!(lease.key, "flaky");
        q.release_claim(&lease, None, Map::new()).unwrap();
    }
    let gone = claim(&q);
    assert_eq!(gone.key, "gone");
    q.abort_claim(&gone, fields(&[("status", json!(404))]))
        .unwrap();
    // "dies": both tries end by an expired lease.
    for _ in 0..2 {
        assert_eq!(claim(&q).key, "dies");
        b.advance(&q, LEASE + Duration::from_secs(1));
    }
    assert_eq!(q.claim().unwrap(), Claim::Finished);
    let counts = q.counts().unwrap();
    assert_eq!((counts.exhausted, counts.aborted, counts.todo), (2, 1, 0));
    assert_eq!((counts.tried, counts.tries), (3, 5));
    for key in ["flaky", "dies"] {
        let state = q.state(key).unwrap().unwrap();
        assert!(state.is_exhausted(2) && !state.aborted, "{key}");
    }
    assert!(q.state("gone").unwrap().unwrap().aborted);
    assert_eq!(q.get("gone").unwrap().unwrap()["status"], json!(404));
    assert!(q.summary().unwrap().contains("exhausted 2"));
}

pub fn fields_merge_and_reserved_fields_are_refused(b: &mut impl Backend) {
    let q = b.make(0, LEASE, RetryDelay::None);
    q.add_keys(&["a"]).unwrap();
    assert!(
        q.update_fields("a", fields(&[("x", json!(1)), ("y", json!([1]))]))
            .unwrap()
    );
    assert!(q.update_fields("a", fields(&[("x", json!(2))])).unwrap());
    assert!(!q.update_fields("nope", fields(&[("x", json!(2))])).unwrap());
    let record = q.get("a").unwrap().unwrap();
    assert_eq!(
        (record["x"].clone(), record["y"].clone()),
        (json!(2), json!([1]))
    );
    for reserved in ["_done", "_tries", "_aborted", "_lease", "_not_before"] {
        let err = q.update_fields("a", fields(&[(reserved, json!(true))]));
        assert!(
            matches!(
                err.map_err(|e| e.into_kind()),
                Err(ErrorKind::InvalidValue { .. })
            ),
            "{reserved}"
        );
    }
    let lease = claim(&q);
    q.complete(&lease, fields(&[("result", json!({"ok": true}))]))
        .unwrap();
    let record = q.get("a").unwrap().unwrap();
    assert_eq!(record["result"], json!({"ok": true}));
    assert_eq!(record["x"], json!(2));
    assert_eq!(record["_done"], json!(true));
    assert!(record.get("_lease").is_none());
    assert_eq!(q.get("nope").unwrap(), None);
    assert_eq!(q.state("nope").unwrap(), None);
}

pub fn counts_and_todo_keys_follow_every_step(b: &mut impl Backend) {
    let q = b.make(0, LEASE, RetryDelay::None);
    let keys: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    q.add_keys(&refs).unwrap();
    assert_eq!(q.todo_keys(3).unwrap(), ["k00", "k01", "k02"]);
    let leases = q.claim_many(5).unwrap();
    for lease in &leases[..3] {
        q.complete(lease, Map::new()).unwrap();
    }
    let c = q.counts().unwrap();
    assert_eq!(
        (c.total, c.done, c.claimed, c.todo, c.tried),
        (20, 3, 2, 17, 5)
    );
    assert_eq!(q.todo_keys(4).unwrap(), ["k03", "k04", "k05", "k06"]);
    q.sync().unwrap();
}

pub fn complete_many_completes_each_live_lease(b: &mut impl Backend) {
    let q = b.make(0, LEASE, RetryDelay::None);
    q.add_keys(&["a", "b", "c"]).unwrap();
    let leases = q.claim_many(3).unwrap();
    q.complete(&leases[1], Map::new()).unwrap();
    let items: Vec<(Lease, Map<String, Value>)> = leases
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), fields(&[("n", json!(i))])))
        .collect();
    assert_eq!(
        q.complete_many(&items).unwrap(),
        [true, false, true],
        "b was completed already"
    );
    assert_eq!(q.get("a").unwrap().unwrap()["n"], json!(0));
    assert!(q.get("b").unwrap().unwrap().get("n").is_none());
    assert_eq!(q.counts().unwrap().done, 3);
    // A key given twice is completed once, by its first item.
    q.add_keys(&["d"]).unwrap();
    let d = claim(&q);
    let twice = vec![(d.clone(), Map::new()), (d, Map::new())];
    assert_eq!(q.complete_many(&twice).unwrap(), [true, false]);
    let reserved = vec![(leases[0].clone(), fields(&[("_done", json!(false))]))];
    assert!(q.complete_many(&reserved).is_err(), "a reserved field");
}

pub fn a_last_try_released_with_a_delay_is_exhausted_without_a_retry_time(b: &mut impl Backend) {
    let q = b.make(1, LEASE, RetryDelay::Fixed(Duration::from_secs(30)));
    q.add_keys(&["a"]).unwrap();
    let lease = claim(&q);
    q.release_claim(&lease, None, Map::new()).unwrap();
    let state = q.state("a").unwrap().unwrap();
    assert!(state.is_exhausted(1), "{state:?}");
    assert_eq!((state.lease, state.not_before), (None, None));
    assert!(q.get("a").unwrap().unwrap().get("_not_before").is_none());
    assert_eq!(q.claim().unwrap(), Claim::Finished);
}
