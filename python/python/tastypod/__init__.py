"""tastypod: tastypy's persistent ordered dict and progress tracker for
Python 3, on tastypod's Rust core.

>>> from tastypod import POD
>>> my_pod = POD('path/to/my.pod')      # doctest: +SKIP
>>> my_pod['foo'] = 'bar'               # doctest: +SKIP

The store is a directory holding a checksummed JSON-lines log (``less``,
``grep`` and ``jq`` read it; the ``tastypod`` command-line tool inspects,
verifies and repairs it). Changes are synced when ``sync_at`` keys are
dirty, on ``sync()``, on ``close()`` and at exit.
"""

from ._errors import (
    ClosedError,
    CorruptError,
    DuplicateKeyError,
    Error,
    LeaseLostError,
    LockedError,
    NotATrackerError,
    PoisonedError,
    ReadOnlyError,
    ShuttingDownError,
)
from ._postgres import PgTracker, connect
from ._pod import POD, PersistentOrderedDict, SharedPersistentOrderedDict, SharedPOD
from ._tastypod import FORMAT_VERSION, dumps, loads
from ._tracker import (
    Claim,
    Progress,
    ProgressTracker,
    SharedProgressTracker,
    SharedTracker,
    Tracker,
)

__all__ = [
    "POD",
    "PersistentOrderedDict",
    "SharedPOD",
    "SharedPersistentOrderedDict",
    "Tracker",
    "ProgressTracker",
    "SharedTracker",
    "SharedProgressTracker",
    "Claim",
    "PgTracker",
    "connect",
    "Progress",
    "Error",
    "LockedError",
    "CorruptError",
    "PoisonedError",
    "ReadOnlyError",
    "DuplicateKeyError",
    "NotATrackerError",
    "LeaseLostError",
    "ShuttingDownError",
    "ClosedError",
    "FORMAT_VERSION",
    "dumps",
    "loads",
]
