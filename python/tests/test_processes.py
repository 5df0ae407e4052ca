"""Several processes on one store: SharedPOD and SharedTracker pickle as
their path, multiprocessing workers drain one tracker with no task given
twice, and exit paths sync."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import time

from conftest import run_python

import tastypod


def _drain(path: str) -> list:
    tracker = tastypod.SharedTracker(path)
    mine = []
    while True:
        key = tracker.claim_next(timeout=30)
        if key is None:
            break
        mine.append(key)
        tracker.mark_done(key)
    tracker.close()
    return mine


def test_workers_drain_one_tracker_with_no_task_given_twice(tmp_path):
    path = str(tmp_path / "jobs")
    t = tastypod.SharedTracker(path)
    t.add_many([f"task-{i}" for i in range(400)])
    t.sync()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.map(_drain, [path] * 4)
    claimed = [k for r in results for k in r]
    assert sorted(claimed) == sorted(f"task-{i}" for i in range(400))
    assert len(set(claimed)) == len(claimed)
    assert t.num_done() == 400
    t.close()


def test_a_value_only_read_never_overwrites_another_writers(tmp_path):
    # Two handles in the multi-process mode (as two processes would be):
    # one reads a value (tracked until its next sync) and does not change
    # it; the other writes a newer one. The first one's sync must not
    # write its stale copy back; a value it did change is written.
    path = str(tmp_path / "p")
    a, b = tastypod.SharedPOD(path), tastypod.SharedPOD(path)
    a["read"], a["changed"] = {"n": 0}, {"n": 0}
    a.sync()
    held, mine = a["read"], a["changed"]
    mine["n"] = 1
    b["read"] = {"n": 99}
    b.sync()
    a.sync()
    a.close()
    b.close()
    reader = tastypod.POD(path, mode="r")
    assert (reader["read"], reader["changed"]) == ({"n": 99}, {"n": 1})
    reader.close()
    # The same for a tracker's records, read through items() too.
    path = str(tmp_path / "t")
    a, b = tastypod.SharedTracker(path), tastypod.SharedTracker(path)
    a.add_many(["x", "y"])
    a.sync()
    records = dict(a.items())
    records["y"]["note"] = "mine"
    b["x"] = {"note": "newer"}
    b.sync()
    a.sync()
    a.close()
    b.close()
    reader = tastypod.Tracker(path, mode="r")
    assert (reader["x"].get("note"), reader["y"].get("note")) == ("newer", "mine")
    reader.close()


def test_a_state_call_does_not_make_a_record_read_look_changed(tmp_path):
    # A tracker's state call shows the new state in the record the program
    # holds; the record's user fields are still compared with the text it
    # was read from, so another process's newer fields survive. The same
    # when the state call adds a field (a release with a delay).
    path = str(tmp_path / "t")
    a, b = tastypod.SharedTracker(path), tastypod.SharedTracker(path)
    a.add_many(["x", "y"])
    a["y"] = {"z": 1}
    a.sync()
    x = a["x"]
    b["x"] = {"note": "newer"}
    b.sync()
    a.mark_done("x")
    assert x["_done"] is True
    assert a.claim_next() == "y"
    y = a["y"]
    a.release("y", delay=100)
    b["y"] = {"z": 2}
    b.sync()
    a.sync()
    a.close()
    b.close()
    reader = tastypod.Tracker(path, mode="r")
    assert reader["x"].get("note") == "newer" and reader["x"]["_done"] is True
    assert reader["y"]["z"] == 2
    assert y["z"] == 1
    reader.close()


def test_records_changed_by_two_processes_keep_both_changes(tmp_path):
    # Two workers each change a different field of the same record read
    # through the tracker: each write-back takes only the fields its
    # program changed, so both changes stay (a field both changed: the
    # later sync's).
    path = str(tmp_path / "t")
    a, b = tastypod.SharedTracker(path), tastypod.SharedTracker(path)
    a.add("x")
    a["x"] = {"gone": 1, "both": 0}
    a.sync()
    mine, theirs = a["x"], b["x"]
    mine["a"], mine["both"] = 1, "a"
    theirs["b"], theirs["both"] = 2, "b"
    del theirs["gone"]
    b.sync()
    a.sync()
    a.close()
    b.close()
    reader = tastypod.Tracker(path, mode="r")
    record = {k: v for k, v in reader["x"].items() if not k.startswith("_")}
    assert record == {"both": "a", "a": 1, "b": 2}
    reader.close()


def test_shared_handles_pickle_as_their_path(tmp_path):
    pod = tastypod.SharedPOD(tmp_path / "p")
    pod["a"] = 1
    pod.sync()
    again = pickle.loads(pickle.dumps(pod))
    assert isinstance(again, tastypod.SharedPOD) and again["a"] == 1
    again["b"] = 2
    again.sync()
    assert pod["b"] == 2


def _writes_then(path: str, end: str) -> str:
    return (
        "import os, signal, sys, time\n"
        "from tastypod import POD\n"
        f"pod = POD({path!r})\n"
        "for i in range(10):\n"
        "    pod[f'k{i}'] = i\n"
        "pod['k0'] = {'nested': []}\n"
        "pod['k0']['nested'].append('x')\n"
        f"{end}\n"
    )


def test_sync_at_exit_on_every_path(tmp_path):
    ends = {
        "exit": ("pass", 0),
        "exception": ("raise RuntimeError('boom')", 1),
        # An uncaught KeyboardInterrupt ends Python as SIGINT does.
        "ctrl-c": ("raise KeyboardInterrupt", -signal.SIGINT),
        "sys.exit": ("sys.exit(3)", 3),
    }
    for name, (end, code) in ends.items():
        path = str(tmp_path / name)
        proc = run_python(_writes_then(path, end), check=False)
        assert proc.returncode == code, (name, proc.stderr)
        with tastypod.POD(path, mode="r") as pod:
            assert len(pod) == 10, name
            assert pod["k0"] == {"nested": ["x"]}, name


def test_sigterm_syncs_then_exits_as_sigterm(tmp_path):
    path = str(tmp_path / "term")
    code = _writes_then(path, "print('ready', flush=True)\ntime.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    with tastypod.POD(path, mode="r") as pod:
        assert len(pod) == 10 and pod["k0"] == {"nested": ["x"]}


def test_sigterm_calls_the_handler_that_was_there(tmp_path):
    path = str(tmp_path / "term2")
    code = (
        "import signal, sys, time\n"
        "def mine(signum, frame):\n"
        "    print('mine', flush=True)\n"
        "    sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, mine)\n"
        + _writes_then(path, "print('ready', flush=True)\ntime.sleep(60)")
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 7
    assert "mine" in proc.stdout.read()
    with tastypod.POD(path, mode="r") as pod:
        assert len(pod) == 10
