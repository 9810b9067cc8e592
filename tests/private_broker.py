"""A Redis broker of the test's own (a redis-server child process on a free port) that the test can
stop and start again, and Celery worker processes on it. The shared broker is never touched."""

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from tests.conftest import require

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, *, timeout: float, what: str, interval: float = 0.1):
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class PrivateRedis:
    def __init__(self):
        self.binary = shutil.which("redis-server")
        require(self.binary is not None, "redis-server is not installed (apt-get install -y redis-server)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)

    def _up(self) -> bool:
        try:
            return self.client().ping()
        except Exception:
            return False

    def start(self):
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._up, timeout=15, what=f"redis-server on port {self.port}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        self.proc = None

    def queued_tasks(self, queue: str = "celery") -> list[tuple[str, str]]:
        """(task name, argsrepr) of the messages waiting in `queue`."""
        import json

        out = []
        for raw in self.client().lrange(queue, 0, -1):
            headers = json.loads(raw)["headers"]
            out.append((headers["task"], headers["argsrepr"]))
        return out


def _reset_pools(app):
    # Dropped, not closed: kombu keeps one pool per broker URL for the whole process, and the next
    # test on the shared broker gets that same pool object back.
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@contextmanager
def celery_on(url: str):
    """Point this process's Celery app at `url` for the block (connection pools dropped both ways)."""
    from config.celery import app

    keys = ("broker_url", "broker_write_url", "broker_read_url", "task_always_eager")
    before = {k: app.conf[k] for k in keys}
    _reset_pools(app)
    app.conf.update(broker_url=url, broker_write_url=url, broker_read_url=url, task_always_eager=False)
    try:
        yield app
    finally:
        _reset_pools(app)
        app.conf.update(before)


def database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def broker_reachable(url: str) -> bool:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


def start_worker(broker_url: str, *, queue: str | None = None, loglevel: str = "INFO", **env) -> subprocess.Popen:
    """A real Celery worker process (solo pool: the task runs in this very process, so killing it kills
    the task) on `broker_url`, writing to the test database; with `queue`, it listens only there."""
    full_env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        CELERY_BROKER_URL=broker_url,
        LOUPE_TESTING="true",
        CELERY_TASK_ALWAYS_EAGER="false",
        **{k: str(v) for k, v in env.items()},
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            *(["-Q", queue] if queue else []),
            "-c",
            "1",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            loglevel,
        ],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_worker(worker: subprocess.Popen) -> str:
    if worker.poll() is None:
        worker.terminate()
    try:
        out, _ = worker.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        out, _ = worker.communicate()
    return out or ""
