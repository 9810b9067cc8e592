"""config.celery.warm_broker: web workers open their broker connection as they start."""

import logging
from unittest import mock

from django.conf import settings

from config.celery import app, warm_broker
from tests.private_broker import broker_reachable


def test_warm_broker_connects_when_the_broker_is_there():
    assert warm_broker() is broker_reachable(settings.CELERY_BROKER_URL)


def test_warm_broker_never_raises_when_the_broker_is_down(caplog):
    with caplog.at_level(logging.WARNING, logger="config.celery"):
        with mock.patch.object(app, "producer_or_acquire", side_effect=ConnectionRefusedError("refused")):
            assert warm_broker() is False
    assert "broker not reachable at start-up" in caplog.text


def test_warm_broker_does_nothing_when_tasks_run_in_process(eager_celery):
    with mock.patch.object(app, "producer_or_acquire") as acquire:
        assert warm_broker() is False
    acquire.assert_not_called()
