#!/usr/bin/env python3
"""W1-W4 of the Rust benchmarks (benches/workloads.rs), from Python, on
tastypod and, when installed, sqlitedict and diskcache, in one run, beside
a plain in-memory ``dict`` in the same loops (the interpreter's floor:
nothing stored, nothing durable) and a JSON-lines file written and read by
CPython's own ``json`` module (``jsonl``: the least a store of JSON values
can cost from Python, with no checksum, no index on disk, no crash rules)
and one JSON document rewritten whole at each commit (``onedoc``, as
pickledb stores: its W3 is CPython's C decoder making the whole store at
once; its W2, 200 rewrites of the whole store, is not run).

    python bench.py [--rounds 3] [--stores tastypod,sqlitedict,diskcache,dict,jsonl,onedoc]

W1: 200,000 new keys, one durable commit. W2: 200,000 read-modify-writes
(a task record marked done), a durable commit every 1,000. W3: reopen a
1,000,000-key store and read every key and value. W4: 2,000 times set one
key and commit durably (median latency). Every store commits durably:
sqlitedict and diskcache with SQLite's synchronous=FULL. Values are task
records {"url": ..., "_tries": 0, "_done": false, "_aborted": false}.
Prints the median of the rounds per store and workload, and each store's
ratio to tastypod.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

N = 200_000
N_REOPEN = 1_000_000
N_DURABLE = 2_000
BATCH = 1_000


def key(i: int) -> str:
    return "task-%08d" % i


def value(i: int) -> Dict[str, Any]:
    return {"url": "https://example.com/page/%d" % i, "_tries": 0, "_done": False, "_aborted": False}


class Tastypod:
    name = "tastypod"

    def __init__(self, d: str, reading: bool = False) -> None:
        import tastypod

        # A reader opens read-only: it changes nothing, and takes no lock.
        self.pod = tastypod.POD(os.path.join(d, "store.pod"), mode="r" if reading else "w")
        if not reading:
            # One commit per `commit()`, as the other stores do.
            self.pod.hold()

    def set(self, k: str, v: Any) -> None:
        self.pod[k] = v

    def get(self, k: str) -> Any:
        return self.pod[k]

    def commit(self) -> None:
        self.pod.sync()

    def items(self) -> Iterator[Tuple[str, Any]]:
        return iter(self.pod.items())

    def close(self) -> None:
        self.pod.close()


class SqliteDict:
    name = "sqlitedict"

    def __init__(self, d: str, reading: bool = False) -> None:
        from sqlitedict import SqliteDict as Db  # type: ignore[import-not-found,import-untyped,unused-ignore]

        self.db = Db(os.path.join(d, "db.sqlite"), tablename="kv", autocommit=False,
                     journal_mode="WAL", encode=json.dumps, decode=json.loads)
        self.db.conn.execute("PRAGMA synchronous=FULL")
        self.db.commit(blocking=True)

    def set(self, k: str, v: Any) -> None:
        self.db[k] = v

    def get(self, k: str) -> Any:
        return self.db[k]

    def commit(self) -> None:
        self.db.commit(blocking=True)

    def items(self) -> Iterator[Tuple[str, Any]]:
        return iter(self.db.items())

    def close(self) -> None:
        self.db.close()


class DiskCache:
    name = "diskcache"

    def __init__(self, d: str, reading: bool = False) -> None:
        import diskcache  # type: ignore[import-not-found,import-untyped,unused-ignore]

        self.c = diskcache.Cache(d, sqlite_synchronous=2, eviction_policy="none", size_limit=2**40)
        self.tx: Any = None

    def set(self, k: str, v: Any) -> None:
        if self.tx is None:
            self.tx = self.c.transact()
            self.tx.__enter__()
        self.c.set(k, v)

    def get(self, k: str) -> Any:
        return self.c[k]

    def commit(self) -> None:
        if self.tx is not None:
            tx, self.tx = self.tx, None
            tx.__exit__(None, None, None)

    def items(self) -> Iterator[Tuple[str, Any]]:
        c = self.c
        return ((k, c[k]) for k in c)

    def close(self) -> None:
        self.commit()
        self.c.close()


class Floor:
    """A plain ``dict`` in memory, nothing on disk: what the interpreter
    alone costs in the same loops (no store can be faster). Its W3 makes
    the million pairs in Python (``(key(i), value(i))``), as it has no
    file to read them from."""

    name = "dict"
    # The dict of the last directory, so a reopen (W2) finds what was set.
    _kept: Tuple[str, Dict[str, Any]] = ("", {})

    def __init__(self, d: str, reading: bool = False) -> None:
        if Floor._kept[0] != d:
            Floor._kept = (d, {})
        self.d = Floor._kept[1]
        self.reading = reading

    def set(self, k: str, v: Any) -> None:
        self.d[k] = v

    def get(self, k: str) -> Any:
        return self.d[k]

    def commit(self) -> None:
        pass

    def items(self) -> Iterator[Tuple[str, Any]]:
        if self.reading:
            return ((key(i), value(i)) for i in range(N_REOPEN))
        return iter(self.d.items())

    def close(self) -> None:
        pass


class JsonLines:
    """A ``dict`` in memory whose every ``set`` appends a line
    ``[key, value]`` (``json.dumps``, CPython's C encoder) to a file, made
    durable (flush + fsync) by ``commit``; an open reads every line back
    with ``json.loads`` (the C decoder) into the ``dict``. It has none of a
    store's checks (no checksum, no torn-tail rule, no lock) and no index
    on disk: it measures what CPython's own JSON codec and objects cost in
    these loops, a floor for any store that hands out Python objects."""

    name = "jsonl"

    def __init__(self, d: str, reading: bool = False) -> None:
        path = os.path.join(d, "log.jsonl")
        self.d: Dict[str, Any] = {}
        if os.path.exists(path):
            loads, d_ = json.loads, self.d
            with open(path, "rb") as f:
                for line in f:
                    k, v = loads(line)
                    d_[k] = v
        self.f = open(path, "a", encoding="utf-8")
        self.dumps = json.JSONEncoder(separators=(",", ":")).encode

    def set(self, k: str, v: Any) -> None:
        self.f.write(self.dumps([k, v]) + "\n")
        self.d[k] = v

    def get(self, k: str) -> Any:
        return self.d[k]

    def commit(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())

    def items(self) -> Iterator[Tuple[str, Any]]:
        return iter(self.d.items())

    def close(self) -> None:
        self.commit()
        self.f.close()


class OneDocument:
    """A ``dict`` in memory written whole, as one JSON document
    (``json.dump``, CPython's C encoder), at each commit (to a new file,
    fsynced, renamed over the old), and read whole by ``json.load`` (the C
    decoder) at open: pickledb's design. Its W3 is CPython's own decoder
    making a million keys and values at once, plus the pairs."""

    name = "onedoc"
    skip = ("W2",)

    def __init__(self, d: str, reading: bool = False) -> None:
        self.path = os.path.join(d, "store.json")
        self.d: Dict[str, Any] = {}
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                self.d = json.load(f)

    def set(self, k: str, v: Any) -> None:
        self.d[k] = v

    def get(self, k: str) -> Any:
        return self.d[k]

    def commit(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.d, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def items(self) -> Iterator[Tuple[str, Any]]:
        return iter(self.d.items())

    def close(self) -> None:
        pass


STORES = {s.name: s for s in (Tastypod, SqliteDict, DiskCache, Floor, JsonLines, OneDocument)}


def build(cls: Any, d: str, n: int) -> None:
    s = cls(d)
    for i in range(n):
        s.set(key(i), value(i))
    s.commit()
    s.close()


def w1(cls: Any, d: str) -> float:
    s = cls(d)
    t = time.perf_counter()
    for i in range(N):
        s.set(key(i), value(i))
    s.commit()
    secs = time.perf_counter() - t
    assert s.get(key(N // 2))["url"].endswith("/%d" % (N // 2))
    s.close()
    return secs


def w2(cls: Any, d: str) -> float:
    build(cls, d, N)
    s = cls(d)
    t = time.perf_counter()
    for i in range(N):
        k = key(i)
        v = s.get(k)
        v["_done"] = True
        v["_tries"] = 1
        s.set(k, v)
        if (i + 1) % BATCH == 0:
            s.commit()
    s.commit()
    secs = time.perf_counter() - t
    assert s.get(key(N - 1))["_done"] is True
    s.close()
    return secs


def w3(cls: Any, d: str) -> float:
    # Built by a child, so this process holds nothing of it.
    if cls is not Floor:
        subprocess.run([sys.executable, __file__, "--build", cls.name, d, str(N_REOPEN)], check=True)
    t = time.perf_counter()
    s = cls(d, reading=True)
    data = list(s.items())
    secs = time.perf_counter() - t
    assert len(data) == N_REOPEN
    s.close()
    return secs


def w4(cls: Any, d: str) -> float:
    s = cls(d)
    lat: List[float] = []
    for i in range(N_DURABLE):
        t = time.perf_counter()
        s.set(key(i), value(i))
        s.commit()
        lat.append(time.perf_counter() - t)
    s.close()
    return statistics.median(lat)


WORKLOADS: Dict[str, Tuple[Callable[[Any, str], float], str]] = {
    "W1 load 200k, one commit (s)": (w1, "s"),
    "W2 200k read-modify-write, commit/1000 (s)": (w2, "s"),
    "W3 reopen 1M + read all (s)": (w3, "s"),
    "W4 set + commit, p50 (us)": (w4, "us"),
}


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--build":
        build(STORES[sys.argv[2]], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stores", default="tastypod,sqlitedict,diskcache,dict,jsonl,onedoc")
    args = parser.parse_args()
    stores = []
    for name in args.stores.split(","):
        try:
            STORES[name](tempfile.mkdtemp()).close()
            stores.append(name)
        except ImportError:
            print(f"({name} is not installed: skipped)")
    base = os.environ.get("TMPDIR_BENCH", tempfile.gettempdir())
    results: Dict[Tuple[str, str], List[float]] = {}
    for _ in range(args.rounds):
        for workload, (run, _unit) in WORKLOADS.items():
            for name in stores:
                if workload.split()[0] in getattr(STORES[name], "skip", ()):
                    continue
                d = tempfile.mkdtemp(dir=base)
                try:
                    results.setdefault((workload, name), []).append(run(STORES[name], d))
                finally:
                    shutil.rmtree(d, ignore_errors=True)
    print(f"medians of {args.rounds} rounds")
    print("| workload | " + " | ".join(stores) + " |")
    print("|---|" + "---|" * len(stores))
    for workload, (_run, unit) in WORKLOADS.items():
        ours = statistics.median(results[(workload, "tastypod")]) if "tastypod" in stores else None
        cells = []
        for name in stores:
            if (workload, name) not in results:
                cells.append("-")
                continue
            m = statistics.median(results[(workload, name)])
            shown = m * 1e6 if unit == "us" else m
            ratio = f" ({m / ours:.1f}x)" if ours and name != "tastypod" else ""
            cells.append(f"{shown:.3f}{ratio}" if unit == "s" else f"{shown:.0f}{ratio}")
        print(f"| {workload} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
