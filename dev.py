#!/usr/bin/env python3
"""Loupe's two set-up commands. Needs only Python 3.11+ on the machine.

    python3 dev.py run    # install, migrate SQLite, load the demo, serve http://127.0.0.1:8000
    python3 dev.py test   # install test dependencies, run the whole suite (extra args go to pytest)
    python3 dev.py lint   # ruff: lint and format check (configured in pyproject.toml)

Both create a virtualenv in .venv inside the checkout and (re)install only when pyproject.toml changed.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def sh(*args, env=None):
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.call([str(a) for a in args], cwd=ROOT, env=env)


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"Loupe needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not PY.exists():
        print(f"Creating a virtualenv in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    spec = f".[{extras}]" if extras else "."
    stamp = VENV / f".installed-{extras or 'app'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    if sh(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip") != 0:
        sys.exit("pip upgrade failed")
    if sh(PY, "-m", "pip", "install", "--quiet", "-e", spec) != 0:
        sys.exit("installing Loupe's dependencies failed")
    stamp.write_text(digest)


def run() -> int:
    ensure_venv("")
    env = dict(os.environ)
    # The demo switch: SQLite, a fixed key and static files from the source tree, as under DEBUG, but
    # with DEBUG off so visitors see Loupe's error pages (DEBUG=true still gives Django's debug pages).
    env.setdefault("LOUPE_DEMO", "true")
    # The demo runs background tasks in-process: it is the one place this switch is turned on.
    env.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
    manage = [PY, "manage.py"]
    for step in (["migrate", "--noinput"], ["loupe_demo"]):
        if sh(*manage, *step, env=env) != 0:
            return 1
    print("\nLoupe is starting on http://127.0.0.1:8000  (Ctrl-C stops it)\n", flush=True)
    return sh(*manage, "runserver", "127.0.0.1:8000", "--noreload", env=env)


def test(args) -> int:
    ensure_venv("test")
    env = dict(os.environ)
    env["LOUPE_TESTING"] = "true"
    return sh(PY, "-m", "pytest", *args, env=env)


def lint() -> int:
    ensure_venv("test")
    ruff = str(VENV / "bin" / "ruff")
    return sh(ruff, "check", ".") or sh(ruff, "format", "--check", ".")


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "test", "lint"):
        print(__doc__)
        return 2
    if sys.argv[1] == "run":
        return run()
    if sys.argv[1] == "lint":
        return lint()
    return test(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
