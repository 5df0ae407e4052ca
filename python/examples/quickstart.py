"""tastypy's examples, as tastypod runs them on Python 3 (type-checked with
``mypy --strict``)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tastypod import POD, Tracker


def main(workdir: Path) -> None:
    my_pod = POD(workdir / "my.pod")
    my_pod["foo"] = "bar"
    my_pod["key"] = {}
    my_pod["key"]["subkey1"] = 1
    my_pod["key"]["subkey2"] = []
    my_pod["key"]["subkey2"].append(1)
    my_pod.close()

    tracker = Tracker(workdir / "my.tracker", max_tries=3)
    for name in ["a", "b", "c"]:
        # Skip tasks that are done or tried too many times
        if not tracker.try_it(name):
            continue
        result = name.upper()
        # Mark the task done and record results
        tracker.mark_done(name)
        tracker[name]["result"] = result
    print(tracker.summary())
    tracker.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
