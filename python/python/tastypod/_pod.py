"""``POD``, the persistent ordered dict, and what every store shares: keys
as tastypy allowed them, mutation tracking, sync at exit."""

from __future__ import annotations

import atexit
import itertools
import os
import signal
import threading
import weakref
from collections.abc import ItemsView, Iterator, KeysView, MutableMapping, ValuesView
from typing import Any, Dict, Iterable, List, Optional, Tuple, TypeVar, Union

from . import _tastypod
from ._errors import ClosedError

Key = Union[str, int, Tuple[Any, ...]]
_T = TypeVar("_T")
_PAGE = 1000
_MISSING: Any = object()


def _key(key: Key) -> str:
    """The store key of ``key``: a ``str`` as it is, an ``int`` as its
    decimal text, a tuple as its compact JSON text (as ``import-tastypy``
    maps tastypy's keys)."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        raise TypeError("keys are str (an int or a tuple is stored as its JSON text), not bool")
    if isinstance(key, int):
        return str(key)
    if isinstance(key, tuple):
        return _tastypod.dumps(key)
    raise TypeError(
        f"keys are str (an int or a tuple is stored as its JSON text), not {type(key).__name__}"
    )


# Every open store of this process, synced at exit and on SIGTERM.
# (By identity: a POD, like a dict, is not hashable.)
_open_stores: "weakref.WeakValueDictionary[int, POD]" = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()
_sigterm_installed = False


def _sync_all() -> None:
    with _registry_lock:
        stores = list(_open_stores.values())
    for store in stores:
        try:
            store.close()
        except Exception as e:  # exit must go on: say what failed
            import sys

            print(f"tastypod: could not sync {store._path} at exit: {e}", file=sys.stderr)


def _on_sigterm(signum: int, frame: Any) -> None:
    _sync_all()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    # Exit as SIGTERM would have.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


_previous_sigterm: Any = None


def _register(store: "POD") -> None:
    global _sigterm_installed, _previous_sigterm
    with _registry_lock:
        _open_stores[id(store)] = store
        if _sigterm_installed or threading.current_thread() is not threading.main_thread():
            return
        _sigterm_installed = True
    try:
        _previous_sigterm = signal.getsignal(signal.SIGTERM)
        if _previous_sigterm in (signal.SIG_IGN,):
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, say
        pass


atexit.register(_sync_all)

# Bumped in the child of every fork: a store opened before the fork belongs
# to the parent (its lock, its log handle) and refuses to work in the child.
_fork_generation = 0


def _forked() -> None:
    global _fork_generation
    _fork_generation += 1
    _open_stores.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


class POD(MutableMapping):  # type: ignore[type-arg]
    """A persistent ordered dict: ``pod = POD('path/to/my.pod')``.

    It behaves as a ``dict`` whose keys stay in first-insertion order and
    whose contents survive the program: changes are written to the log in
    ``path`` (created with its directories if missing) when ``sync_at``
    keys are dirty, on :meth:`sync`, on :meth:`close` and at exit (also
    after an uncaught exception, Ctrl-C or SIGTERM).

    Values are JSON: ``None``, ``bool``, ``int`` (up to 64 bits), ``float``
    (finite), ``str``, lists, tuples (stored as lists) and dicts (whose
    keys become strings, as ``json`` makes them). A value JSON cannot hold
    raises ``TypeError`` (``ValueError`` for NaN, infinities and integers
    beyond 64 bits) and stores nothing.

    A value read through the pod (``pod[k]``, ``get``, iteration) is
    tracked until the next sync: changing it in place
    (``pod['k']['sub'].append(1)``) reaches the disk; only values whose
    JSON changed are written. The one gotcha left: a reference kept
    *across* a sync is no longer tracked; read it through the pod again.

    ``mode='r'`` opens read-only and takes no lock.
    """

    _native: Any

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        sync_at: int = 1000,
        mode: str = "w",
        *,
        durable: bool = False,
    ) -> None:
        if mode not in ("r", "w"):
            raise ValueError(f"mode must be 'r' or 'w', not {mode!r}")
        if sync_at < 1:
            raise ValueError("sync_at must be at least 1")
        self._path = os.fspath(path)
        self._sync_at = sync_at
        self._mode = mode
        self._durable = durable
        self._pid = os.getpid()
        self._generation = _fork_generation
        # Values read through the pod and tracked until the next sync:
        # key -> (value, the JSON text it was read from).
        self._live: Dict[str, Tuple[Any, str]] = {}
        self._holds = 0
        self._native = self._open_native()
        if mode == "w":
            _register(self)

    # ---- plumbing ----

    _multi_process = False

    def _open_native(self) -> Any:
        return _tastypod.NativePod(
            self._path,
            sync_at=self._sync_at,
            read_only=self._mode == "r",
            multi_process=self._multi_process,
            durable=self._durable,
        )

    @property
    def _n(self) -> Any:
        if self._generation != _fork_generation:
            raise ClosedError(
                f"{self._path} was opened in process {self._pid}: a forked process must open the store itself"
            )
        return self._native

    def _track(self, key: str, value: _T, read: str) -> _T:
        """Keeps ``value`` (read through the pod from the JSON text
        ``read``) to write back if the program changes it."""
        if self._mode == "w" and isinstance(value, (dict, list)):
            # Sync the others first, so the value handed out stays tracked.
            if self._holds == 0 and self._live and len(self._live) + 1 >= self._sync_at:
                self.sync()
            self._live[key] = (value, read)
        return value

    def _flush(self) -> None:
        """Writes every tracked value whose JSON changed."""
        if not self._live:
            return
        live, self._live = self._live, {}
        self._write_back_all(live)

    def _write_back_all(self, live: Dict[str, Tuple[Any, str]]) -> None:
        """Writes every value of ``live`` (key -> value, text it was read
        from) that the program changed since it read it, in one native
        call; a value the store cannot hold is left out (its change is
        lost, as it cannot be stored) and its error raised once the others
        are written. A value not changed is not written: in the
        multi-process mode another process may have written a newer one."""
        self._n.set_many_if_changed(live)

    def _flush_key(self, key: str) -> None:
        held = self._live.pop(key, _MISSING)
        if held is not _MISSING:
            self._write_back_all({key: held})


    def __reduce__(self) -> Any:
        return (type(self), (self._path, self._sync_at, self._mode))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._path!r})"

    # ---- the dict protocol ----

    def __getitem__(self, key: Key) -> Any:
        k = key if type(key) is str else _key(key)
        held = self._live.get(k, _MISSING)
        if held is not _MISSING:
            return held[0]
        if self._mode == "r":
            return self._n.get(k)
        value, read = self._n.get_tracked(k)
        # `_track`, written out (this is the hottest read). `_live` is read
        # again: another thread may have synced (and replaced it) meanwhile.
        if isinstance(value, (dict, list)):
            if self._holds == 0 and self._live and len(self._live) + 1 >= self._sync_at:
                self.sync()
            self._live[k] = (value, read)
        return value

    def __setitem__(self, key: Key, value: Any) -> None:
        k = key if type(key) is str else _key(key)
        if self._live:
            self._live.pop(k, None)
        self._n.set(k, value)

    def __delitem__(self, key: Key) -> None:
        k = _key(key)
        self._live.pop(k, None)
        if not self._n.remove(k):
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        try:
            k = _key(key)  # type: ignore[arg-type]
        except TypeError:
            return False
        return bool(self._n.contains(k))

    def __len__(self) -> int:
        return int(len(self._n))

    def __iter__(self) -> Iterator[str]:
        return _pages(self, "keys_page")

    def keys(self) -> KeysView[str]:
        return KeysView(self)

    def values(self) -> ValuesView[Any]:
        return _Values(self)

    def items(self) -> ItemsView[str, Any]:
        return _Items(self)

    def _iter_items(self) -> Iterator[Tuple[str, Any]]:
        if self._mode == "r":
            # Nothing to track: values read are never written back.
            pairs: Iterator[Tuple[str, Any]] = _pages(self, "items_page")
            return pairs
        return self._tracked_items(_pages(self, "items_page", True))

    def _tracked_items(self, triples: Iterator[Tuple[str, Any, str]]) -> Iterator[Tuple[str, Any]]:
        # `_track` written out (a call per item cost a tenth of the pass).
        for k, v, read in triples:
            held = self._live.get(k, _MISSING)
            if held is not _MISSING:
                yield (k, held[0])
                continue
            if isinstance(v, (dict, list)):
                # Sync the others first, so the value handed out stays tracked.
                if self._holds == 0 and self._live and len(self._live) + 1 >= self._sync_at:
                    self.sync()
                self._live[k] = (v, read)
            yield (k, v)

    def get(self, key: Key, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def popitem(self) -> Tuple[str, Any]:
        """Removes and returns the last pair (as ``dict.popitem``)."""
        keys = self._n.keys()
        if not keys:
            raise KeyError("popitem(): the store is empty")
        k = keys[-1]
        value = self[k]
        del self[k]
        return k, value

    def clear(self) -> None:
        for k in self._n.keys():
            del self[k]

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """``update(key)``: tastypy's "write this key again at the next
        sync" (see :meth:`mark_dirty`). Otherwise ``dict.update``."""
        if len(args) == 1 and not kwargs and isinstance(args[0], str):
            self.mark_dirty(args[0])
            return
        super().update(*args, **kwargs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (dict, POD)):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    # ---- synchronization ----

    def sync(self) -> None:
        """Writes every change (and every value read and changed in place)
        and fsyncs: once it returns, they survive a crash and a power loss."""
        if self._mode == "r":
            return
        try:
            self._flush()
        finally:
            # What the flush wrote is made durable even if it raised for a
            # value the store cannot hold.
            self._n.sync()

    def sync_key(self, key: Key) -> None:
        """Writes the change of ``key`` (and the changes made before it) now."""
        k = _key(key)
        self._flush_key(k)
        self._n.sync_key(k)

    def mark_dirty(self, key: Key) -> bool:
        """Writes ``key`` again at the next sync; returns whether it is present."""
        k = _key(key)
        self._flush_key(k)
        return bool(self._n.mark_dirty(k))

    def hold(self) -> None:
        """Suspends automatic syncing until :meth:`unhold` (holds nest)."""
        self._n.hold()
        self._holds += 1

    def unhold(self) -> None:
        """Ends one hold; syncs if the threshold was reached meanwhile."""
        if self._holds > 0:
            self._holds -= 1
        if self._holds == 0 and len(self._live) >= self._sync_at:
            self._flush()
        self._n.unhold()

    def revert(self) -> None:
        """Drops every change not yet synced (values read and changed in
        place included): the store is as on disk."""
        self._live.clear()
        self._n.revert()

    def compact(self) -> None:
        """Rewrites the log without its dead records."""
        self._flush()
        self._n.compact()

    def close(self) -> None:
        """Syncs and closes the store (releasing its lock). Closing twice
        does nothing; any later use raises :class:`ClosedError`."""
        if self._generation != _fork_generation or self._native.closed:
            return
        try:
            if self._mode == "w":
                self._flush()
        finally:
            self._native.close()
            with _registry_lock:
                _open_stores.pop(id(self), None)

    @property
    def closed(self) -> bool:
        return bool(self._native.closed)

    @property
    def path(self) -> str:
        return self._path

    def __enter__(self) -> "POD":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _pages(store: "POD", page_of: str, *args: Any) -> Iterator[Any]:
    """The items of the pages the native ``page_of(cursor, _PAGE)`` gives,
    until an empty one, iterated in C (``chain``), not one generator step
    per item. Nothing is asked of the store before the first item is (the
    cursor is made then, as a generator would)."""

    def pages() -> Iterator[List[Any]]:
        native = store._n
        next_page = getattr(native, page_of)
        cursor = native.cursor()
        while True:
            page = next_page(cursor, _PAGE, *args)
            if not page:
                return
            yield page

    return itertools.chain.from_iterable(pages())


class _Values(ValuesView):  # type: ignore[type-arg]
    def __iter__(self) -> Iterator[Any]:
        for _, v in self._mapping._iter_items():
            yield v


class _Items(ItemsView):  # type: ignore[type-arg]
    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        return self._mapping._iter_items()  # type: ignore[no-any-return]


PersistentOrderedDict = POD


class SharedPOD(POD):
    """A :class:`POD` that several processes (and threads) write at once:
    the store's multi-process mode. It pickles as its path and options, so
    ``multiprocessing`` and ``concurrent.futures`` workers each reopen it."""

    _multi_process = True


SharedPersistentOrderedDict = SharedPOD

