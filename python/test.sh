#!/usr/bin/env bash
# Builds the Python package into a fresh virtualenv (pip fetches maturin as
# the build backend), then runs its tests and type-checks its examples.
# pytest's exit status 5 ("no tests ran") fails, like any other failure.
set -euo pipefail
cd "$(dirname "$0")"
venv=${TASTYPOD_VENV:-../target/py-venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" 2>/dev/null || {
        apt-get update -qq && apt-get install -y -qq python3-venv
        python3 -m venv "$venv"
    }
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q pytest mypy
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps .
# The command-line tool, for the tests that read stores with it.
cargo build -q -p tastypod-cli
"$venv/bin/python" -m pytest -q tests
"$venv/bin/python" -m mypy --strict examples
