"""The exceptions of tastypod: one base, :class:`Error`, and a subclass per
kind of failure a program may want to tell apart."""

from __future__ import annotations

from typing import Optional


class Error(Exception):
    """A tastypod error. ``path`` and ``line`` name the file and line when
    the error is about one (corruption, say)."""

    path: Optional[str] = None
    line: Optional[int] = None


class LockedError(Error):
    """Another writer holds the store."""


class CorruptError(Error):
    """The store's log is damaged (``path`` and ``line`` say where), or is
    not a tastypod log, or is of a format version this build does not read."""


class PoisonedError(Error):
    """A write or fsync failed earlier: the handle refuses every write;
    reopen the store to see what is on disk."""


class ReadOnlyError(Error):
    """The store was opened with ``mode='r'``."""


class DuplicateKeyError(Error, KeyError):
    """``add`` of a task that is already in the tracker."""

    def __str__(self) -> str:  # KeyError would quote the message
        return Exception.__str__(self)


class NotATrackerError(Error):
    """The store holds a record that is not a task."""


class LeaseLostError(Error):
    """The claim ended and another worker claimed the task since."""


class ShuttingDownError(Error):
    """The program is stopping on a signal; the store was synced."""


class ClosedError(Error):
    """The store was closed (or this process is a fork that did not open it)."""
