"""POD as a dict: CPython's mapping protocol, order, values JSON can hold,
keys tastypy allowed, syncing as tastypy did, and what reaches the disk."""

from __future__ import annotations

import json
import math

import pytest

import tastypod
from tastypod import POD


def log_lines(path):
    # Blank lines are skipped, as every reader does: an open store's log
    # ends with the blank lines its writer writes records over.
    return [line for line in (path / "pod.log").read_text().splitlines() if line]


def test_the_dict_protocol(tmp_path):
    pod = POD(tmp_path / "p")
    assert len(pod) == 0 and list(pod) == [] and "a" not in pod
    pod["b"] = 1
    pod["a"] = {"x": [1, 2]}
    pod["c"] = None
    pod["b"] = 2  # keeps its place
    assert list(pod) == ["b", "a", "c"]
    assert list(pod.keys()) == ["b", "a", "c"]
    assert list(pod.values()) == [2, {"x": [1, 2]}, None]
    assert list(pod.items()) == [("b", 2), ("a", {"x": [1, 2]}), ("c", None)]
    assert pod == {"b": 2, "a": {"x": [1, 2]}, "c": None}
    assert pod != {"b": 2}
    assert "a" in pod and "zz" not in pod and 5 not in pod
    assert pod.get("zz") is None and pod.get("zz", 7) == 7
    assert pod["c"] is None and pod.get("c", 7) is None
    with pytest.raises(KeyError):
        pod["zz"]
    with pytest.raises(KeyError):
        del pod["zz"]
    assert pod.setdefault("d", [1]) == [1]
    assert pod.setdefault("d", [2]) == [1]
    assert pod.pop("d") == [1]
    assert pod.pop("d", "gone") == "gone"
    with pytest.raises(KeyError):
        pod.pop("d")
    assert pod.popitem() == ("c", None)  # the last pair, as dict's
    pod.update({"e": 5}, f=6)
    pod.update([("g", 7)])
    assert list(pod) == ["b", "a", "e", "f", "g"]
    del pod["b"]
    pod["b"] = 0  # inserted again: at the end
    assert list(pod)[-1] == "b"
    assert len(pod) == 5
    pod.clear()
    assert len(pod) == 0 and dict(pod) == {}
    pod.close()


def test_it_is_a_mutable_mapping():
    from collections.abc import MutableMapping

    assert issubclass(POD, MutableMapping)
    assert tastypod.PersistentOrderedDict is POD


def test_values_are_json(tmp_path):
    pod = POD(tmp_path / "p")
    pod["v"] = {"t": (1, 2), 3: "int key", 1.5: "float key", True: "bool key", None: "none key"}
    assert pod["v"] == {"t": [1, 2], "3": "int key", "1.5": "float key", "true": "bool key", "null": "none key"}
    pod["big"] = 2**64 - 1
    pod["neg"] = -(2**63)
    pod["f"] = 0.1
    assert (pod["big"], pod["neg"], pod["f"]) == (2**64 - 1, -(2**63), 0.1)
    pod["order"] = {"z": 1, "a": 2}
    assert list(pod["order"]) == ["z", "a"]  # members keep their order
    for bad, error in [
        (object(), TypeError),
        ({1, 2}, TypeError),
        (b"bytes", TypeError),
        ({"k": object()}, TypeError),
        ({(1, 2): 1}, TypeError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        ([1, -math.inf], ValueError),
        (2**64, ValueError),
        (-(2**63) - 1, ValueError),
        ({1: "a", "1": "b"}, ValueError),  # one member twice
    ]:
        with pytest.raises(error):
            pod["bad"] = bad
        assert "bad" not in pod
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(ValueError):
        pod["deep"] = deep
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError):
        pod["loop"] = loop
    pod.close()
    assert "bad" not in POD(tmp_path / "p", mode="r")


def test_text_is_read_from_the_str_as_it_is(tmp_path):
    # Keys and strings are read from CPython's own UTF-8 form of each str
    # (not copied): every kind of str, escapes and all, round-trips, on
    # disk as JSON (read with json, not tastypod) and back.
    texts = ["", "ascii", "caf\u00e9", "\u4e2d\u6587", "\U0001f600 emoji", 'q"uote\\back', "tab\tnl\n\x00"]
    pod = POD(tmp_path / "p")
    for i, text in enumerate(texts):
        pod[text] = {text: [text, i]}
    pod.close()
    on_disk = {}
    for line in log_lines(tmp_path / "p"):
        record = json.loads(line)
        if "k" in record:
            on_disk[record["k"]] = record["v"]
    assert on_disk == {text: {text: [text, i]} for i, text in enumerate(texts)}
    pod = POD(tmp_path / "p")
    assert list(pod.items()) == [(text, {text: [text, i]}) for i, text in enumerate(texts)]
    # The text is read from the str's own UTF-8 form, which CPython makes
    # once and keeps in the object (counted by sys.getsizeof): a copy made
    # outside it (PyO3's to_cow on the 3.9 ABI) leaves the size unchanged.
    import os
    import sys

    fresh = "caf\u00e9-" + str(os.getpid())
    before = sys.getsizeof(fresh)
    pod[fresh] = "x" + fresh
    assert sys.getsizeof(fresh) > before
    del pod[fresh]
    # A lone surrogate has no UTF-8 form: refused, with nothing stored.
    for key, value in [("\ud800", 1), ("ok", "\udfff"), ("ok", {"\ud800": 1})]:
        with pytest.raises(UnicodeEncodeError):
            pod[key] = value
    assert len(pod) == len(texts) and "ok" not in pod
    with pytest.raises(UnicodeEncodeError):
        pod["\ud800"]
    pod.close()


def test_pairs_of_scalars_are_left_to_refcounting(tmp_path):
    # A pair whose value is a scalar holds nothing a cycle could run
    # through: it is handed out off the cycle collector's lists, as CPython
    # untracks such tuples itself. A pair whose value is a dict or a list
    # stays tracked, so a cycle made through it later is still collected.
    import gc
    import weakref

    pod = POD(tmp_path / "p")
    pod["n"] = 1
    pod["s"] = "text"
    pod["d"] = {"n": 1}
    pod["l"] = [1, [2]]
    pod.close()
    reader = POD(tmp_path / "p", mode="r")
    pairs = list(reader.items())
    assert pairs == [("n", 1), ("s", "text"), ("d", {"n": 1}), ("l", [1, [2]])]
    assert all(type(p) is tuple for p in pairs)
    assert [gc.is_tracked(p) for p in pairs] == [False, False, True, True]

    class Marker:
        pass

    def tie_and_drop(i):
        # Ties pairs[i] into a cycle through its value, drops every outside
        # reference, and returns a weak reference into the cycle.
        marker = Marker()
        pair = pairs[i]
        if isinstance(pair[1], dict):
            pair[1]["back"] = (pair, marker)
        else:
            pair[1].append((pair, marker))
        pairs[i] = None
        return weakref.ref(marker)

    alive = [tie_and_drop(2), tie_and_drop(3)]
    gc.collect()
    assert [a() for a in alive] == [None, None], "a cycle through a pair read was not collected"
    reader.close()


def test_iteration_starts_at_the_first_item(tmp_path):
    # iter() asks nothing of the store: the cursor is made at the first
    # item, as a generator's would be.
    pod = POD(tmp_path / "p")
    pod["a"] = 1
    keys, items = iter(pod), iter(pod.items())
    pod.compact()  # renumbers the slots: a cursor made before would be stale
    assert list(keys) == ["a"] and list(items) == [("a", 1)]
    pod.close()


def test_a_sync_writes_back_every_value_it_can(tmp_path):
    # Values read and changed in place are written back together at a
    # sync; one changed into something JSON cannot hold raises, after the
    # others are written (its own change cannot be stored, and is dropped).
    pod = POD(tmp_path / "p")
    for k in "abcd":
        pod[k] = {"n": 0}
    pod.sync()
    a, b, c, d = pod["a"], pod["b"], pod["c"], pod["d"]
    a["n"], b["n"], c["n"] = 1, object(), 3  # d read, not changed
    lines = len(log_lines(tmp_path / "p"))
    with pytest.raises(TypeError):
        pod.sync()
    pod.sync()  # the bad value is not tracked any more: nothing to raise
    pod.close()
    reader = POD(tmp_path / "p", mode="r")
    assert dict(reader.items()) == {"a": {"n": 1}, "b": {"n": 0}, "c": {"n": 3}, "d": {"n": 0}}
    # Only the two changed values were written (a batch line and two records).
    assert len(log_lines(tmp_path / "p")) == lines + 3
    reader.close()
    # The same for a value the store's own rules refuse (one member twice:
    # 1 and "1" both become "1").
    pod = POD(tmp_path / "p")
    a, b, c = pod["a"], pod["b"], pod["c"]
    a["n"], c["n"] = 10, 30
    b[1], b["1"] = "x", "y"
    with pytest.raises(ValueError):
        pod.sync()
    pod.close()
    reader = POD(tmp_path / "p", mode="r")
    assert (reader["a"], reader["b"], reader["c"]) == ({"n": 10}, {"n": 0}, {"n": 30})
    reader.close()


def test_a_value_read_as_sync_at_is_reached_stays_tracked(tmp_path):
    # The read that reaches sync_at syncs the values read before it; the
    # one it hands out is still tracked, so a change to it is not lost.
    pod = POD(tmp_path / "p", sync_at=2)
    for k in "abc":
        pod[k] = {"n": 0}
    pod.sync()
    a = pod["a"]
    a["n"] = 1
    b = pod["b"]  # reaches sync_at: `a` is written, `b` handed out tracked
    b["n"] = 2
    pairs = iter(pod.items())
    _, a_again = next(pairs)
    a_again["n"] = 10
    _, b_again = next(pairs)  # reaches sync_at again, during iteration
    b_again["n"] = 20
    c = next(pairs)[1]
    c["n"] = 3
    pod.close()
    reader = POD(tmp_path / "p", mode="r")
    assert dict(reader.items()) == {"a": {"n": 10}, "b": {"n": 20}, "c": {"n": 3}}
    reader.close()


def test_keys_tastypy_allowed(tmp_path):
    pod = POD(tmp_path / "p")
    pod[7] = "seven"
    pod[(1, "a")] = "tuple"
    assert list(pod) == ["7", '[1,"a"]']
    assert pod[7] == pod["7"] == "seven"
    assert pod[(1, "a")] == "tuple"
    with pytest.raises(TypeError):
        pod[1.5] = 1
    with pytest.raises(TypeError):
        pod[None] = 1  # type: ignore[index]


def test_sync_at_the_1000th_dirty_key(tmp_path):
    pod = POD(tmp_path / "p")
    for i in range(999):
        pod[f"k{i}"] = i
    assert len(log_lines(tmp_path / "p")) == 1  # the header only
    pod["k999"] = 999
    assert len(log_lines(tmp_path / "p")) > 1000  # one batch line, 1000 records
    assert pod._n.dirty_len() == 0


def test_mutation_through_the_pod_reaches_the_disk_and_reading_writes_nothing(tmp_path):
    path = tmp_path / "p"
    pod = POD(path)
    pod["a"] = {"list": []}
    pod["b"] = {"n": 1}
    pod.sync()
    before = len(log_lines(path))
    for _ in range(3):
        assert pod["b"] == {"n": 1}  # read only
    _ = list(pod.values())
    pod["a"]["list"].append(1)
    pod.sync()
    after = log_lines(path)
    # Only the key whose JSON changed is written.
    assert len(after) == before + 1
    assert json.loads(after[-1])["k"] == "a"
    ref = pod["a"]
    pod.sync()
    ref["list"].append("after the sync")  # the gotcha: not tracked any more
    pod.close()
    assert POD(path, mode="r")["a"] == {"list": [1]}


def test_sync_key_mark_dirty_revert_compact(tmp_path):
    path = tmp_path / "p"
    pod = POD(path)
    pod["a"] = 1
    pod["b"] = 2
    pod.sync_key("a")
    assert [json.loads(l).get("k") for l in log_lines(path)[1:]] == ["a"]
    pod.revert()
    assert "b" not in pod and pod["a"] == 1
    assert pod.mark_dirty("a") and not pod.mark_dirty("zz")
    pod.sync()
    pod.compact()
    assert log_lines(path)[1:] and [json.loads(l)["k"] for l in log_lines(path)[1:]] == ["a"]
    pod.close()


def test_read_only_mode_takes_no_lock(tmp_path):
    path = tmp_path / "p"
    writer = POD(path)
    writer["a"] = 1
    writer.sync()
    reader = POD(path, mode="r")
    assert reader["a"] == 1
    assert list(reader.items()) == [("a", 1)] and list(reader.values()) == [1]
    with pytest.raises(tastypod.ReadOnlyError):
        reader["b"] = 2
    with pytest.raises(tastypod.LockedError):
        POD(path)
    writer.close()
    with pytest.raises(ValueError):
        POD(path, mode="x")


def test_context_manager_closes_and_a_closed_pod_refuses(tmp_path):
    path = tmp_path / "p"
    with POD(path) as pod:
        pod["a"] = [1]
        pod["a"].append(2)
    assert pod.closed
    with pytest.raises(tastypod.ClosedError):
        pod["a"]
    pod.close()  # twice: nothing
    with POD(path) as again:
        assert again["a"] == [1, 2]


def test_corruption_names_file_and_line(tmp_path):
    path = tmp_path / "p"
    with POD(path) as pod:
        pod.hold()
        for i in range(5):
            pod[f"k{i}"] = i
    lines = (path / "pod.log").read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b'"v":1', b'"v":7')
    (path / "pod.log").write_bytes(b"\n".join(lines))
    with pytest.raises(tastypod.CorruptError) as info:
        POD(path)
    assert info.value.line == 4
    assert info.value.path and info.value.path.endswith("pod.log")
    assert isinstance(info.value, tastypod.Error)


def test_threads_share_one_pod(tmp_path):
    import threading

    pod = POD(tmp_path / "p")

    def work(n: int) -> None:
        for i in range(200):
            pod[f"t{n}-{i}"] = i

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(pod) == 800
    pod.close()


def test_a_forked_child_must_reopen(tmp_path):
    import os

    pod = POD(tmp_path / "p")
    pod["a"] = 1
    pid = os.fork()
    if pid == 0:
        try:
            pod["a"]
        except tastypod.ClosedError:
            os._exit(0)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert pod["a"] == 1
    pod.close()
