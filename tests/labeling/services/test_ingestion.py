"""Ingestion re-runs a batch whose transaction the database aborted to break a deadlock (two batches
upserting overlapping rows): the batch is stored once, as if nothing had happened."""

import pytest
from django.db import OperationalError, connection

from labeling.models import Item
from labeling.services import ingestion
from labeling.services.ingestion import items_ingest
from tests.faults import deadlock_once
from tests.labeling.factories import ProjectFactory


@pytest.mark.django_db(transaction=True)
def test_a_batch_aborted_by_a_deadlock_is_written_again_whole(monkeypatch):
    project = ProjectFactory()
    name = "_write_postgres" if connection.vendor == "postgresql" else "_write_portable"
    calls = []
    monkeypatch.setattr(ingestion, name, deadlock_once(getattr(ingestion, name), calls))
    rows = [{"external_id": f"e{n}", "payload": {"text": f"t{n}"}} for n in range(3)]
    result = items_ingest(project=project, rows=rows)
    assert len(calls) == 2
    assert (result.created, result.updated, result.unchanged) == (3, 0, 0)
    assert sorted(Item.objects.filter(project=project).values_list("external_id", flat=True)) == ["e0", "e1", "e2"]

    # Any other database error is the caller's: nothing retried, nothing written.
    monkeypatch.setattr(ingestion, name, lambda **kw: (_ for _ in ()).throw(OperationalError("disk full")))
    with pytest.raises(OperationalError):
        items_ingest(project=project, rows=[{"external_id": "e9", "payload": {"text": "x"}}])
    assert not Item.objects.filter(project=project, external_id="e9").exists()
