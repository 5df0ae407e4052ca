"""The tracker on PostgreSQL from Python: ``tastypod.connect(url)`` and
``SharedTracker(url)`` give the worker API of the file tracker, on a server
these tests start (initdb into a temporary directory, as the ``postgres``
user when run as root, pg_ctl on a free loopback port). Without a server
the tests are skipped, except under ``CI=true``, where they fail."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from typing import Iterator, List, Optional

import pytest

import tastypod


def _bin_dir() -> Optional[str]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    path = shutil.which("initdb")
    return os.path.dirname(path) if path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The base URL of a server started for these tests."""
    bindir = _bin_dir()
    user = "postgres" if os.geteuid() == 0 else None
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and no PostgreSQL server is installed")
        pytest.skip("no PostgreSQL server is installed")
    tmp = tempfile.mkdtemp(prefix="tastypod-pg-py-")
    if user:
        shutil.chown(tmp, user=user)
    data = os.path.join(tmp, "data")
    port = _free_port()

    def run(*cmd: str) -> None:
        proc = subprocess.run(cmd, user=user, capture_output=True, text=True)
        if proc.returncode != 0:
            message = f"{cmd[0]} failed: {proc.stderr}"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)

    run(os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data}"
    run(os.path.join(bindir, "pg_ctl"), "-D", data, "-l", os.path.join(data, "log"), "-w", "-o", options, "start")
    try:
        yield f"postgres://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"],
            user=user,
            capture_output=True,
        )
        shutil.rmtree(tmp, ignore_errors=True)


def url(server: str) -> str:
    return f"{server}?tracker=py-{uuid.uuid4().hex[:12]}"


def test_connect_gives_the_tracker_api(server: str) -> None:
    t = tastypod.connect(url(server), max_tries=2, lease=30)
    assert isinstance(t, tastypod.PgTracker)
    t.add_many_if_absent(["a", "b", "c"])
    assert t.add_if_absent("a") is False
    with pytest.raises(tastypod.DuplicateKeyError):
        t.add("b")
    assert len(t) == 3 and "a" in t and "zz" not in t
    key = t.claim_next()
    assert key == "a" and t.tries("a") == 1
    t.mark_done("a", {"status": 200})
    assert t.done("a") and t["a"]["status"] == 200 and t["a"]["_done"] is True
    claim = t.claim()
    assert claim.kind == "task" and claim.key == "b"
    t.release("b", fields={"error": "timeout"})
    assert t["b"]["error"] == "timeout" and t.tries("b") == 1
    t.update("c", note="x")
    assert t.get("c")["note"] == "x"
    assert t.claim_next() == "b"
    t.abort("b", {"why": 404})
    assert t.aborted("b") and not t.exhausted("b")
    assert t.claim_next() == "c"
    t.release("c")
    assert t.claim_next() == "c"
    t.release("c")  # its second try: out of tries
    assert t.exhausted("c")
    assert t.claim_next() is None
    c = t.counts()
    assert (c["total"], c["done"], c["aborted"], c["exhausted"], c["todo"]) == (3, 1, 1, 1, 0)
    assert t.num_done() == 1 and t.percent_done(0) == "33 %"
    assert "exhausted 1" in t.summary()
    with pytest.raises(KeyError):
        t["nope"]
    with pytest.raises(ValueError):
        t.update("a", _done=False)
    t.close()
    assert t.closed


def test_shared_tracker_with_a_url_is_the_postgres_tracker(server: str) -> None:
    u = url(server)
    t = tastypod.SharedTracker(u, max_tries=3)
    assert isinstance(t, tastypod.PgTracker)
    t.add_many_if_absent(str(i) for i in range(5))
    again = tastypod.SharedTracker(u)
    assert again.max_tries == 3 and len(again) == 5
    assert again.todo_keys(limit=2) == ["0", "1"]


def test_a_lost_lease_raises_and_changes_nothing(server: str) -> None:
    u = url(server)
    first = tastypod.connect(u, lease=0.2)
    first.add("a")
    assert first.claim_next() == "a"
    import time

    time.sleep(0.4)
    second = tastypod.connect(u)
    assert second.claim_next() == "a"
    with pytest.raises(tastypod.LeaseLostError):
        first.mark_done("a")
    # Again: the stale worker never finishes through the new claim.
    with pytest.raises(tastypod.LeaseLostError):
        first.release("a")
    with pytest.raises(tastypod.LeaseLostError):
        first.mark_done("a")
    assert not second.done("a") and second.tries("a") == 2
    assert second["a"]["_lease"]["owner"] != ""
    assert "_not_before" not in second["a"]
    second.mark_done("a")
    assert first.done("a")


def test_threads_share_the_work_each_task_once(server: str) -> None:
    u = url(server)
    setup = tastypod.connect(u)
    setup.add_many_if_absent(f"k{i:04}" for i in range(400))
    done: List[str] = []
    lock = threading.Lock()

    def worker() -> None:
        t = tastypod.connect(u)
        for key in t:
            t.mark_done(key)
            with lock:
                done.append(key)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(done) == [f"k{i:04}" for i in range(400)]
    assert setup.counts()["done"] == 400


def test_a_bad_url_is_a_clear_error(server: str) -> None:
    with pytest.raises(tastypod.Error, match="tracker name"):
        tastypod.connect(server + "?tracker=a;b")
