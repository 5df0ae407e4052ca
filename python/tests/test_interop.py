"""One format for every tool: a store written from Python is read by the
Rust command-line tool and the other way round; a tastypy store migrated
with `import-tastypy` opens from Python with the keys tastypy showed."""

from __future__ import annotations

import json
import subprocess

from conftest import REPO

import tastypod


def test_python_writes_the_cli_reads(tmp_path, tastypod_cli):
    path = tmp_path / "p"
    with tastypod.POD(path) as pod:
        pod["a"] = {"z": 1, "y": [True, None, 1.5]}
        pod[7] = "seven"
    out = subprocess.run([tastypod_cli, "get", path, "a"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"z": 1, "y": [True, None, 1.5]}
    keys = subprocess.run([tastypod_cli, "keys", path], capture_output=True, text=True, check=True)
    assert keys.stdout.split() == ["a", "7"]
    verify = subprocess.run([tastypod_cli, "verify", path], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_the_cli_writes_python_reads(tmp_path, tastypod_cli):
    path = tmp_path / "p"
    subprocess.run([tastypod_cli, "set", path, "k", '{"n": [1, 2]}'], check=True)
    with tastypod.POD(path) as pod:
        assert pod["k"] == {"n": [1, 2]}


def test_a_value_written_by_the_cli_and_only_read_is_not_written_back(tmp_path, tastypod_cli):
    # The CLI stores the text as given (`1E2`, spaces); Python, reading the
    # value and not changing it, would write other text for it. That is
    # not a change: another process's newer value must survive the sync.
    path = tmp_path / "p"
    subprocess.run([tastypod_cli, "set", path, "k", '{"n": 0, "x": 1E2}'], check=True)
    a, b = tastypod.SharedPOD(path), tastypod.SharedPOD(path)
    assert a["k"] == {"n": 0, "x": 100.0}
    b["k"] = {"n": 99}
    b.sync()
    a.sync()
    a.close()
    b.close()
    with tastypod.POD(path, mode="r") as reader:
        assert reader["k"] == {"n": 99}


def test_a_migrated_tastypy_tracker_opens_from_python(tmp_path, tastypod_cli):
    fixture = REPO / "cli" / "tests" / "fixtures" / "tastypy" / "tracker"
    dest = tmp_path / "migrated"
    subprocess.run([tastypod_cli, "import-tastypy", fixture, dest], check=True, capture_output=True)
    # What tastypy showed: its reader's rules on the same directory.
    expected = [
        json.loads(line)
        for line in (fixture / "expected.jsonl").read_text(encoding="utf8").splitlines()
    ]
    t = tastypod.Tracker(dest, mode="r")
    assert list(t) == [e["key"] for e in expected]
    for e in expected:
        assert t[e["key"]] == e["value"], e["key"]
    done = sum(1 for e in expected if e["value"]["_done"])
    assert t.num_done() == done
