"""``PgTracker``: a tracker whose tasks live in PostgreSQL, so workers on
many machines share one crawl: ``tastypod.connect(url)``, or
``SharedTracker(url)`` with a ``postgres://`` URL."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from . import _tastypod
from ._counts import _Counters
from ._pod import Key, _key
from ._tracker import Claim, Progress, _claim_next


class PgTracker(_Counters):
    """A tracker on a PostgreSQL server:
    ``PgTracker('postgres://me@db:5432/crawl?tracker=pages', max_tries=3)``.

    Every worker, on any machine, that opens the same URL shares the tasks;
    the tables are created on first use. The tracker API is the one of
    :class:`Tracker` for workers: add tasks, :meth:`claim` (or
    :meth:`claim_next`), then :meth:`mark_done`, :meth:`abort` or
    :meth:`release` the key; read records, counters and
    :meth:`summary`. Each call is committed when it returns (nothing to
    sync).

    A claim is a lease decided by the server's clock and counts a try: if
    the worker dies, the task comes back after ``lease`` seconds with that
    try counted. Finishing a task this handle claimed is fenced by its
    lease: if the lease ran out and another worker claimed the task since,
    :class:`LeaseLostError` is raised and nothing changes, so no task is
    finished twice.

    Records are read as copies: ``tracker[key]`` is a snapshot, and a
    change to it is not written back. Write fields with :meth:`update`
    (merged by the server) or with the ``fields`` of :meth:`mark_done`,
    :meth:`abort` and :meth:`release`.
    """

    def __init__(
        self,
        url: str,
        max_tries: Optional[int] = None,
        *,
        lease: Optional[float] = None,
        retry_delay: Optional[float] = None,
    ) -> None:
        self._url = url
        self._n = _tastypod.NativePgTracker(
            url, max_tries=max_tries, lease=lease, retry_delay=retry_delay
        )

    def __repr__(self) -> str:
        return f"PgTracker({self._n.url!r})"

    @property
    def url(self) -> str:
        """The URL, without its password."""
        return str(self._n.url)

    @property
    def max_tries(self) -> int:
        return int(self._n.max_tries())

    # ---- adding and reading tasks ----

    def add(self, key: Key) -> None:
        """Adds the task ``key``; :class:`DuplicateKeyError` if present."""
        from ._errors import DuplicateKeyError

        k = _key(key)
        if self._n.add_many_if_absent([k]) == 0:
            raise DuplicateKeyError(f"the task {k!r} is already in {self.url}")

    def add_if_absent(self, key: Key) -> bool:
        """Adds ``key`` unless present; returns whether it was added."""
        return self._n.add_many_if_absent([_key(key)]) == 1

    def add_many_if_absent(self, keys: Iterable[Key]) -> int:
        """Adds each absent key (one round trip per 10,000); returns how
        many were added."""
        return int(self._n.add_many_if_absent([_key(k) for k in keys]))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (str, int, tuple)):
            return False
        return self._n.state(_key(key)) is not None

    def __len__(self) -> int:
        return self.counts()["total"]

    def __getitem__(self, key: Key) -> Any:
        """A snapshot of the task's record (``_done``, ``_tries``, ... and
        your fields); ``KeyError`` if absent."""
        record = self._n.get(_key(key))
        if record is None:
            raise KeyError(key)
        return record

    def get(self, key: Key, default: Any = None) -> Any:
        record = self._n.get(_key(key))
        return default if record is None else record

    def update(self, key: Key, fields: Optional[Dict[str, Any]] = None, **kw: Any) -> None:
        """Merges ``fields`` (and keyword fields) into the task's record,
        on the server; ``KeyError`` if absent. Reserved fields are refused."""
        merged = dict(fields or {})
        merged.update(kw)
        if not self._n.update(_key(key), merged):
            raise KeyError(key)

    def _state(self, key: Key) -> Tuple[bool, int, bool, bool]:
        state = self._n.state(_key(key))
        if state is None:
            raise KeyError(key)
        return state

    def check(self, key: Key) -> bool:
        """Whether the task is done."""
        return bool(self._state(key)[0])

    done = check

    def tries(self, key: Key) -> int:
        return int(self._state(key)[1])

    def aborted(self, key: Key) -> bool:
        return bool(self._state(key)[2])

    def exhausted(self, key: Key) -> bool:
        """Whether the task is out of tries (given up; not aborted)."""
        done, tries, aborted, claimed = self._state(key)
        limit = self.max_tries
        return not done and not aborted and not claimed and limit > 0 and tries >= limit

    # ---- claims, for workers ----

    def claim(self, timeout: float = 0.0) -> Claim:
        """Claims the next task under a lease (counting a try); waits up to
        ``timeout`` seconds while every task left is claimed or waiting."""
        kind, key, number = self._n.claim(timeout)
        if kind == "task":
            return Claim("task", key, int(number or 0), None)
        if kind == "wait":
            return Claim("wait", None, None, number)
        return Claim("finished", None, None, None)

    def claim_many(self, n: int) -> List[Tuple[str, int]]:
        """Claims up to ``n`` tasks at once: ``[(key, try_number), ...]``."""
        return [(str(k), int(t)) for k, t in self._n.claim_many(n)]

    def claim_next(self, timeout: Optional[float] = None) -> Optional[str]:
        """The key of the next task, claimed for this worker, or ``None``
        when nothing is left to do; waits while tasks are claimed by others
        (up to ``timeout`` seconds, then ``TimeoutError``)."""
        return _claim_next(self.claim, timeout)

    def __iter__(self) -> Iterator[str]:
        """Claims task after task until none is left (waiting while others
        hold the rest): ``for key in tracker: ...; tracker.mark_done(key)``."""
        while True:
            key = self.claim_next()
            if key is None:
                return
            yield key

    def mark_done(self, key: Key, fields: Optional[Dict[str, Any]] = None) -> None:
        """Marks the task done, merging ``fields`` into its record."""
        self._n.mark_done(_key(key), fields)

    def abort(self, key: Key, fields: Optional[Dict[str, Any]] = None) -> None:
        """Gives the task up (the program's verdict): never tried again."""
        self._n.abort(_key(key), fields)

    def release(
        self, key: Key, delay: Optional[float] = None, fields: Optional[Dict[str, Any]] = None
    ) -> None:
        """Ends a claim without success: the task is retried after the
        retry delay (``delay`` seconds, if given), or given up (exhausted)
        if that was its last try."""
        self._n.release(_key(key), delay, fields)

    def extend(self, key: Key) -> None:
        """Extends this worker's claim on ``key`` by the lease length."""
        self._n.extend(_key(key))

    # ---- counters ----

    def counts(self) -> Dict[str, int]:
        """``total``, ``done``, ``aborted``, ``exhausted``, ``todo``,
        ``claimed``, ``tried`` (tasks) and ``tries`` (tries in all)."""
        names = ("total", "done", "aborted", "exhausted", "todo", "claimed", "tried", "tries")
        return {name: int(n) for name, n in zip(names, self._n.counts())}

    def summary(self) -> str:
        """``done 120/300 (40.00 %), tried 150 (170 tries), aborted 3, exhausted 2``."""
        return str(self._n.summary())

    def todo_keys(self, allow_aborted: bool = False, limit: Optional[int] = None) -> List[str]:
        """The tasks still to do, in order (at most ``limit``)."""
        return list(self._n.todo_keys(allow_aborted, limit))

    def progress(self, file: Any = None) -> Progress:
        """A progress display: ``with tracker.progress() as bar: ... bar.update()``."""
        return Progress(self, file)  # type: ignore[arg-type]

    # ---- closing ----

    def sync(self) -> None:
        """Nothing to do: every call is committed when it returns."""

    def close(self) -> None:
        self._n.close()

    @property
    def closed(self) -> bool:
        return bool(self._n.closed)

    def __enter__(self) -> "PgTracker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def connect(
    url: str,
    max_tries: Optional[int] = None,
    *,
    lease: Optional[float] = None,
    retry_delay: Optional[float] = None,
) -> PgTracker:
    """Opens the tracker at ``url``
    (``postgres://USER@HOST:PORT/DB?tracker=NAME``), creating it if
    needed; ``max_tries``, ``lease`` and ``retry_delay`` (seconds) are
    stored with it, and kept from before when not given."""
    return PgTracker(url, max_tries, lease=lease, retry_delay=retry_delay)
