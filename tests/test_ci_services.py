"""Under CI=true, a test whose service is missing fails instead of skipping."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = "tests/labeling/services/test_ground_truth.py::test_concurrent_writers_get_gapless_unique_sequences"


def run(ci: str):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CI")}
    env.update(CI=ci, LOUPE_TESTING="true")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "--create-db", TARGET],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_missing_postgres_fails_under_ci_and_skips_with_a_message_otherwise():
    ci = run("true")
    assert ci.returncode == 1, ci.stdout[-2000:]
    assert "CI=true and this test needs PostgreSQL" in ci.stdout
    local = run("")
    assert local.returncode == 0, local.stdout[-2000:]
    assert "SKIPPED" in local.stdout and "needs PostgreSQL" in local.stdout
