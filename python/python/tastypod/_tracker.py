"""``Tracker``: a :class:`POD` of task records with tastypy's gates and
counters, and claims for workers."""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple, TypeVar, Union

from . import _tastypod
from ._counts import _Counters
from ._pod import POD, Key, _key

_R = TypeVar("_R")

# The fields that hold a task's state.
_RESERVED = ("_aborted", "_done", "_lease", "_not_before", "_tries")


def _claim_next(claim: Callable[..., "Claim"], timeout: Optional[float]) -> Optional[str]:
    """The key ``claim`` hands out next, waiting while every task left is
    claimed or waiting (up to ``timeout`` seconds, then ``TimeoutError``);
    ``None`` when nothing is left to do."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = 60.0 if deadline is None else max(0.0, deadline - time.monotonic())
        found = claim(timeout=max(left, 0.001))
        if found.kind == "task":
            return str(found.key)
        if found.kind == "finished":
            return None
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError("every task left is claimed by another worker or waiting")


class Claim(NamedTuple):
    """What :meth:`Tracker.claim` found: ``kind`` is ``"task"`` (``key``
    is yours, on try ``try_number``), ``"wait"`` (tasks are left but all
    are claimed or waiting for a retry; one may be claimable in
    ``wait_seconds``) or ``"finished"`` (nothing is left to do)."""

    kind: str
    key: Optional[str]
    try_number: Optional[int]
    wait_seconds: Optional[float]


class Tracker(POD, _Counters):
    """A progress tracker: ``Tracker('path/to/my.tracker', max_tries=3)``.

    Each value is one task's record, a dict holding ``_done``, ``_tries``
    and ``_aborted`` beside any fields of your own
    (``tracker[key]['result'] = r``). A tracker is a :class:`POD`: the same
    persistence, syncing and dict protocol.

    ``max_tries`` (0: no limit) is stored with the tracker; ``None`` keeps
    the stored limit. A task out of tries is *exhausted* (given up), which
    is not *aborted* (the program's own verdict, :meth:`abort`).
    """

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        max_tries: Optional[int] = None,
        sync_at: int = 1000,
        mode: str = "w",
        *,
        lease: Optional[float] = None,
        durable: bool = False,
    ) -> None:
        self._max_tries = max_tries
        self._lease = lease
        super().__init__(path, sync_at=sync_at, mode=mode, durable=durable)

    def _open_native(self) -> Any:
        return _tastypod.NativeTracker(
            self._path,
            max_tries=self._max_tries,
            sync_at=self._sync_at,
            read_only=self._mode == "r",
            multi_process=self._multi_process,
            durable=self._durable,
            lease=self._lease,
        )

    def __reduce__(self) -> Any:
        return (type(self), (self._path, self._max_tries, self._sync_at, self._mode))

    def _write_back_all(self, live: Dict[str, Tuple[Any, str]]) -> None:
        # Each record read earlier and changed since: its user fields, on
        # the task's state now. As POD's: every record that can be written
        # is, then the first error is raised.
        failed: Optional[BaseException] = None
        for key, (value, read) in live.items():
            try:
                self._n.set_if_changed(key, value, keep_state=True, read=read)
            except (TypeError, ValueError) as e:
                failed = failed or e
        if failed is not None:
            raise failed

    def _state_call(self, key: Key, call: Callable[[str], _R]) -> _R:
        """Runs a call that changes ``key``'s state, then shows the new
        state in the record the program holds (the same dict), keeping the
        fields it changed there."""
        k = _key(key)
        out = call(k)
        held = self._live.get(k)
        if held is not None:
            # The held record keeps the text it was read from: its user
            # fields are what the program's changes are told apart from
            # (the state fields are not taken from it at write-back).
            live = held[0]
            fresh = self._n.get(k)
            for name in _RESERVED:
                if name in fresh:
                    live[name] = fresh[name]
                else:
                    live.pop(name, None)
        return out

    # ---- the dict protocol, for records ----

    def __setitem__(self, key: Key, value: Any) -> None:
        k = _key(key)
        self._live.pop(k, None)
        self._n.set_if_changed(k, value, keep_state=False)

    def __delitem__(self, key: Key) -> None:
        """Removes the task (rare: it recounts every task)."""
        k = _key(key)
        self._live.pop(k, None)
        if not self._n.remove(k):
            raise KeyError(key)

    def _iter_items(self) -> Iterator[Tuple[str, Any]]:
        keys = self._n.keys()
        for start in range(0, len(keys), 1000):
            page = keys[start : start + 1000]
            for k, found in zip(page, self._n.records_tracked(page)):
                if found is None:
                    continue
                held = self._live.get(k)
                yield (k, held[0]) if held is not None else (k, self._track(k, *found))

    def __iter__(self) -> Iterator[str]:
        return iter(self._n.keys())

    # ---- adding tasks ----

    def add(self, key: Key) -> None:
        """Adds the task ``key``; :class:`DuplicateKeyError` if present."""
        self._n.add(_key(key))

    def add_if_absent(self, key: Key) -> bool:
        """Adds ``key`` unless present; returns whether it was added."""
        return bool(self._n.add_if_absent(_key(key)))

    def add_many(self, keys: Iterable[Key]) -> None:
        """Adds every key (all or none: one present raises)."""
        self._n.add_many([_key(k) for k in keys])

    def add_many_if_absent(self, keys: Iterable[Key]) -> int:
        """Adds each absent key, in one step; returns how many were added."""
        return int(self._n.add_many_if_absent([_key(k) for k in keys]))

    # ---- reading a task ----

    def check(self, key: Key) -> bool:
        """Whether the task is done."""
        return bool(self._n.done(_key(key)))

    done = check

    def tries(self, key: Key) -> int:
        return int(self._n.tries(_key(key)))

    def aborted(self, key: Key) -> bool:
        return bool(self._n.aborted(_key(key)))

    def exhausted(self, key: Key) -> bool:
        """Whether the task is out of tries (given up; not aborted)."""
        return bool(self._n.exhausted(_key(key)))

    # ---- gates ----

    def should_do(self, key: Key, allow_aborted: bool = False) -> bool:
        """Whether the task is present and not done (nor aborted, unless
        ``allow_aborted``)."""
        return bool(self._n.should_do(_key(key), allow_aborted))

    def check_or_add(self, key: Key, allow_aborted: bool = False) -> bool:
        """:meth:`should_do`, adding the task if absent."""
        return bool(self._n.check_or_add(_key(key), allow_aborted))

    def should_try(self, key: Key, allow_aborted: bool = False) -> bool:
        """Whether the task should be tried (present, not done, not
        aborted, under ``max_tries``); if so, counts the try."""
        return bool(self._n.should_try(_key(key), allow_aborted))

    def try_it(self, key: Key, allow_aborted: bool = False) -> bool:
        """:meth:`should_try`, adding the task if absent: the gate of the
        docs' loop (``if not tracker.try_it(name): continue``)."""
        return bool(self._n.try_it(_key(key), allow_aborted))

    # ---- changing a task ----

    def mark_done(self, key: Key) -> None:
        self._state_call(key, self._n.mark_done)

    def mark_not_done(self, key: Key) -> None:
        self._state_call(key, self._n.mark_not_done)

    def increment_tries(self, key: Key) -> None:
        self._state_call(key, self._n.increment_tries)

    def decrement_tries(self, key: Key) -> None:
        self._state_call(key, self._n.decrement_tries)

    def reset_tries(self, key: Key) -> None:
        self._state_call(key, self._n.reset_tries)

    def abort(self, key: Key) -> None:
        """Gives the task up (the program's verdict): never tried again."""
        self._state_call(key, self._n.abort)

    def unabort(self, key: Key) -> None:
        self._state_call(key, self._n.unabort)

    # ---- iterating ----

    def todo_keys(self, allow_aborted: bool = False) -> List[str]:
        """The tasks not done (nor aborted, unless ``allow_aborted``) and
        under ``max_tries``, in order."""
        return list(self._n.todo_keys(allow_aborted))

    def todo_items(self, allow_aborted: bool = False) -> List[Tuple[str, Any]]:
        return [(k, self[k]) for k in self.todo_keys(allow_aborted)]

    def try_keys(self, allow_aborted: bool = False) -> Iterator[str]:
        """Yields each task to try, counting a try for each as it is yielded."""
        for k in self._n.keys():
            if self._n.should_try(k, allow_aborted):
                yield k

    def try_items(self, allow_aborted: bool = False) -> Iterator[Tuple[str, Any]]:
        for k in self.try_keys(allow_aborted):
            yield k, self[k]

    # ---- counters ----

    def counts(self) -> Dict[str, int]:
        """``total``, ``done``, ``aborted``, ``exhausted``, ``todo``,
        ``claimed``, ``tried`` (tasks) and ``tries`` (tries in all)."""
        names = ("total", "done", "aborted", "exhausted", "todo", "claimed", "tried", "tries")
        return {name: int(n) for name, n in zip(names, self._n.counts())}

    def summary(self) -> str:
        """``done 120/300 (40.00 %), tried 150 (170 tries), aborted 3, exhausted 2``."""
        return str(self._n.summary())

    # ---- claims, for workers ----

    def claim(self, timeout: float = 0.0) -> Claim:
        """Claims the next task under a lease (counting a try); waits up to
        ``timeout`` seconds while every task left is claimed by another
        worker or waiting for a retry."""
        kind, key, number = self._n.claim_next(timeout)
        if kind == "task":
            return Claim("task", key, int(number), None)
        if kind == "wait":
            return Claim("wait", None, None, number)
        return Claim("finished", None, None, None)

    def claim_next(self, timeout: Optional[float] = None) -> Optional[str]:
        """The key of the next task, claimed for this worker, or ``None``
        when nothing is left to do; waits while tasks are claimed by others
        (up to ``timeout`` seconds, then ``TimeoutError``; ``None``: as long
        as needed). :meth:`claim` tells waiting and finished apart without
        waiting."""
        return _claim_next(self.claim, timeout)

    def release(self, key: Key, delay: Optional[float] = None) -> None:
        """Ends a claim without success: the task is retried after the
        retry delay (``delay`` seconds, if given), or given up (exhausted)
        if that was its last try."""
        k = _key(key)
        self._state_call(k, lambda k: self._n.release(k, delay))

    def freed_at_open(self) -> Tuple[List[str], List[str]]:
        """The claims the open freed: the tasks to do again, and those given
        up because the freed claim was their last try."""
        freed, exhausted = self._n.freed_at_open()
        return list(freed), list(exhausted)

    @property
    def max_tries(self) -> int:
        return int(self._n.max_tries())

    def progress(self, file: Any = None) -> "Progress":
        """A progress display that starts at the current counts (so a
        resumed job shows its real position): ``with tracker.progress() as
        bar: ... bar.update()``."""
        return Progress(self, file)


ProgressTracker = Tracker


class SharedTracker(Tracker):
    """A :class:`Tracker` that several processes (and threads) work on at
    once (the multi-process mode); :meth:`claim_next` hands each worker its
    own task. It pickles as its path and options."""

    _multi_process = True

    def __new__(cls, path: Any = None, *args: Any, **kwargs: Any) -> Any:
        # A postgres:// URL: the tracker on PostgreSQL (see connect()).
        if isinstance(path, str) and path.startswith(("postgres://", "postgresql://")):
            from ._postgres import PgTracker

            return PgTracker(path, *args, **kwargs)
        return super().__new__(cls)


SharedProgressTracker = SharedTracker


class Progress:
    """A resumable progress display: a bar redrawn on a terminal, a line
    every 5 seconds elsewhere, with done/total, rate and time left (over
    the tasks still to do)."""

    def __init__(self, tracker: Tracker, file: Any = None) -> None:
        self._tracker = tracker
        self._file = file if file is not None else sys.stderr
        self._tty = bool(getattr(self._file, "isatty", lambda: False)())
        self._start = time.monotonic()
        self._start_done = tracker.num_done()
        self._last = 0.0

    def _line(self) -> str:
        c = self._tracker.counts()
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = (c["done"] - self._start_done) / elapsed
        eta = f"{c['todo'] / rate:.0f}s" if rate > 0 else "?"
        rate_text = f"{rate:.0f}/s" if rate >= 100 else f"{rate:.1f}/s" if rate >= 10 else f"{rate:.2f}/s"
        percent = 100.0 * c["done"] / c["total"] if c["total"] else 0.0
        return (
            f"{c['done']}/{c['total']} done ({percent:.1f} %), {rate_text}, ETA {eta}; "
            f"{c['aborted']} aborted, {c['exhausted']} exhausted"
        )

    def update(self) -> None:
        now = time.monotonic()
        if self._tty and now - self._last >= 0.1:
            self._last = now
            self._file.write("\r" + self._line())
            self._file.flush()
        elif not self._tty and now - self._last >= 5.0:
            self._last = now
            self._file.write(self._line() + "\n")
            self._file.flush()

    def close(self) -> None:
        """Shows the final counts as they are."""
        self._file.write(("\r" if self._tty else "") + self._line() + "\n")
        self._file.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
