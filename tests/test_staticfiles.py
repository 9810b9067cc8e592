"""Static files as production collects them: `collectstatic` with the manifest storage must succeed.

The manifest storage follows every reference inside CSS and JS files (url(), @import, sourceMappingURL)
and fails on one that names a file not shipped; without a manifest every page that uses {% static %}
answers 500 outside DEBUG. Runs the real command with production settings in a fresh process.
"""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_collectstatic_with_the_manifest_storage_succeeds_and_maps_every_vendored_asset(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "LOUPE_TESTING", "LOUPE_DEMO")}
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="loupe.example",
        STATIC_ROOT=str(tmp_path),
        DATABASE_URL=env.get("DATABASE_URL", "postgres://u@127.0.0.1/unused"),
        CELERY_BROKER_URL=env.get("CELERY_BROKER_URL", "memory://"),
    )
    res = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    vendored = [p.relative_to(ROOT / "static").as_posix() for p in (ROOT / "static" / "vendor").rglob("*.js")]
    assert vendored and all(name in manifest for name in vendored), vendored
    assert "loupe/api.js" in manifest  # the shared page helper every page loads (templates/base.html)
    for name in vendored:  # each hashed file is there, compressed too (whitenoise)
        assert (tmp_path / manifest[name]).exists() and (tmp_path / (manifest[name] + ".gz")).exists()


# Page scripts that use the shared helper (static/loupe/api.js) instead of a copy of their own.
USES_SHARED_HELPER = (
    "alerts/rules.js",
    "alerts/channels.js",
    "bugqueue/models.js",
    "bugqueue/datasets.js",
    "bugqueue/resolve_dialog.js",
)


def test_page_scripts_use_the_shared_api_helper_loaded_before_them():
    base = (ROOT / "templates" / "base.html").read_text()
    assert base.index("loupe/api.js") < base.index("{% block content %}") < base.index("{% block scripts %}")
    for name in USES_SHARED_HELPER:
        text = (ROOT / "static" / name).read_text()
        assert "window.Loupe" in text, name
        for copy in ("function say(", "function api(", "X-CSRFToken", "csrf-token"):
            assert copy not in text, (name, copy)
