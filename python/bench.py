#!/usr/bin/env python3
"""W1-W4 of the Rust benchmarks (benches/workloads.rs), from Python, on
tastypod and, when installed, sqlitedict and diskcache, in one run, beside
a plain in-memory ``dict`` in the same loops (the interpreter's floor:
nothing stored, nothing durable).

    python bench.py [--rounds 3] [--stores tastypod,sqlitedict,diskcache,dict]

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
        from sqlitedict import SqliteDict as Db  # type: ignore[import-not-found]

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
        import diskcache  # type: ignore[import-not-found]

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


STORES = {s.name: s for s in (Tastypod, SqliteDict, DiskCache, Floor)}


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
    parser.add_argument("--stores", default="tastypod,sqlitedict,diskcache,dict")
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
            m = statistics.median(results[(workload, name)])
            shown = m * 1e6 if unit == "us" else m
            ratio = f" ({m / ours:.1f}x)" if ours and name != "tastypod" else ""
            cells.append(f"{shown:.3f}{ratio}" if unit == "s" else f"{shown:.0f}{ratio}")
        print(f"| {workload} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
