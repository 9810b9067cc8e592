import logging
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("loupe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def warm_broker() -> bool:
    """Open this process's broker connection now (a web worker calls it as it starts): a process's
    first task message otherwise pays for loading the transport and connecting, inside whichever
    request happens to send it.
    Never fatal: with the broker down, it logs and the first send connects (or fails) as before."""
    if app.conf.task_always_eager:
        return False
    try:
        app.finalize(auto=True)
        with app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, interval_max=0)
        return True
    except Exception as exc:  # noqa: BLE001 - a warm-up must not stop the worker from serving
        logging.getLogger(__name__).warning("broker not reachable at start-up (%s); tasks will connect when sent", exc)
        return False
