"""Tracker: tastypy's calls and counters, records with the user's fields,
claims for workers."""

from __future__ import annotations

import pytest

import tastypod
from tastypod import Tracker


def test_tastypy_calls_and_counters(tmp_path):
    t = Tracker(tmp_path / "t", max_tries=2)
    assert tastypod.ProgressTracker is Tracker
    t.add("a")
    with pytest.raises(tastypod.DuplicateKeyError):
        t.add("a")
    with pytest.raises(KeyError):
        t.add("a")
    assert t.add_if_absent("b") and not t.add_if_absent("b")
    t.add_many(["c", "d"])
    assert t.add_many_if_absent(["d", "e"]) == 1
    assert list(t) == ["a", "b", "c", "d", "e"]
    assert t["a"] == {"_done": False, "_tries": 0, "_aborted": False}
    assert not t.check("a") and t.should_do("a")
    assert t.should_try("a") and t.tries("a") == 1
    t.mark_done("a")
    assert t.check("a") and not t.should_do("a") and not t.should_try("a")
    t.increment_tries("b")
    t.increment_tries("b")
    assert t.tries("b") == 2 and not t.should_try("b")  # out of tries
    t.decrement_tries("b")
    assert t.tries("b") == 1
    t.reset_tries("b")
    assert t.tries("b") == 0
    t.abort("c")
    assert t.aborted("c") and not t.should_do("c") and t.should_do("c", allow_aborted=True)
    t.unabort("c")
    assert not t.aborted("c")
    t.mark_not_done("a")
    assert not t.check("a")
    t.mark_done("a")
    t.abort("e")
    assert t.todo_keys() == ["b", "c", "d"]
    assert t.todo_keys(allow_aborted=True) == ["b", "c", "d", "e"]
    assert [k for k, _ in t.todo_items()] == ["b", "c", "d"]
    assert (t.num_done(), t.num_tried(), t.num_aborted()) == (1, 1, 1)
    assert t.percent_done() == "20.00 %"
    assert t.percent_done(1) == "20.0 %"
    assert t.percent_not_done() == "80.00 %"
    assert t.percent_aborted(0) == "20 %"
    assert t.fraction_done() == pytest.approx(0.2)
    assert t.summary().startswith("done 1/5 (20.00 %)")
    tried = list(t.try_keys())
    assert tried == ["b", "c", "d"] and t.tries("d") == 1
    assert [k for k, _ in t.try_items()] == ["b", "c", "d"]
    assert t.tries("b") == 2
    assert t.exhausted("b") and not t.aborted("b")
    t.close()


def test_try_it_adds_and_gates(tmp_path):
    t = Tracker(tmp_path / "t", max_tries=3)
    assert t.try_it("new") and t.tries("new") == 1
    assert t.try_it("new") and t.try_it("new")
    assert not t.try_it("new")  # 3 tries made
    t.mark_done("other") if "other" in t else None
    assert t.check_or_add("x") and "x" in t


def test_fields_and_mark_done_both_kept(tmp_path):
    path = tmp_path / "t"
    t = Tracker(path)
    t.add("k")
    rec = t["k"]  # held across the state change
    rec["note"] = "before"
    t.mark_done("k")
    assert rec["_done"] is True and rec["note"] == "before"
    t["k"]["result"] = 42
    t.close()
    t = Tracker(path, mode="r")
    assert t["k"]["_done"] is True
    assert t["k"]["result"] == 42 and t["k"]["note"] == "before"


def test_a_sync_writes_back_every_record_it_can(tmp_path):
    t = Tracker(tmp_path / "t")
    t.add_many(["a", "b", "c"])
    a, b, c = t["a"], t["b"], t["c"]
    a["note"], b["note"], c["note"] = "x", object(), "z"
    with pytest.raises(TypeError):
        t.sync()
    t.close()
    t = Tracker(tmp_path / "t", mode="r")
    assert (t["a"].get("note"), t["b"].get("note"), t["c"].get("note")) == ("x", None, "z")
    t.close()


def test_setting_a_record_and_removing_one(tmp_path):
    t = Tracker(tmp_path / "t")
    t["new"] = {"url": "x"}
    assert t["new"]["url"] == "x" and not t.check("new")
    with pytest.raises(ValueError):
        t["bad"] = 5
    t.add("other")
    del t["new"]
    assert "new" not in t and list(t) == ["other"] and t.counts()["total"] == 1
    with pytest.raises(KeyError):
        del t["new"]


def test_max_tries_is_stored(tmp_path):
    path = tmp_path / "t"
    Tracker(path, max_tries=4).close()
    t = Tracker(path)
    assert t.max_tries == 4
    t.close()


def test_claims(tmp_path):
    t = Tracker(tmp_path / "t", max_tries=2)
    t.add_many(["a", "b"])
    assert t.claim_next() == "a"
    c = t.claim()
    assert c.kind == "task" and c.key == "b" and c.try_number == 1
    assert t.claim().kind == "wait"
    with pytest.raises(TimeoutError):
        t.claim_next(timeout=0.05)
    t.mark_done("a")
    t.release("b")
    assert t.claim_next() == "b"
    t.release("b")  # the last try
    assert t.claim_next() is None
    assert t.claim().kind == "finished"
    assert t.exhausted("b")


def test_claims_left_by_a_killed_run_are_freed(tmp_path):
    import os

    path = tmp_path / "t"
    pid = os.fork()
    if pid == 0:
        t = Tracker(path, max_tries=1)
        t.add_many(["a", "b"])
        t.claim_next()
        t.sync()
        os._exit(0)  # no close: as if killed
    os.waitpid(pid, 0)
    t = Tracker(path)
    assert t.freed_at_open() == ([], ["a"])
    assert t.exhausted("a") and t.claim_next() == "b"


def test_progress_shows_real_counts(tmp_path):
    import io

    t = Tracker(tmp_path / "t")
    t.add_many([str(i) for i in range(10)])
    out = io.StringIO()
    with t.progress(out) as bar:
        for k in ["0", "1", "2"]:
            t.mark_done(k)
            bar.update()
    assert out.getvalue().splitlines()[-1].startswith("3/10 done (30.0 %)")
