"""Shared helpers: a fresh interpreter for persistence checks, and the
tastypod command-line tool of this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_python(code: str, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter (as the docs' examples do)."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, **kw
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def cli() -> Optional[Path]:
    """The ``tastypod`` binary built from this checkout, if any."""
    env = os.environ.get("TASTYPOD_CLI")
    if env:
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    for profile in ("debug", "release"):
        path = target / profile / "tastypod"
        if path.exists():
            return path
    return None


@pytest.fixture
def tastypod_cli() -> Path:
    path = cli()
    if path is None:
        if os.environ.get("CI"):
            raise AssertionError("the tastypod CLI is not built (cargo build -p tastypod-cli)")
        pytest.skip("the tastypod CLI is not built")
    return path
