"""A large CSV is read row by row: ingesting it keeps memory bounded (tracemalloc peak), whatever its
size. IMPORT_SCALE_ROWS (default 50,000) sets the number of rows."""

import os
import time
import tracemalloc

import pytest
from django.core.files import File

from labeling.models import ImportStatus, Item
from labeling.services.file_import import import_create, import_run, import_start

ROWS = int(os.environ.get("IMPORT_SCALE_ROWS", "50000"))
PEAK_LIMIT = 100 * 2**20


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def write_csv(path, rows):
    with open(path, "w") as f:
        f.write("external_id,text,channel,prediction,model_version,prob_pos,prob_neg,prob_neu,predicted_at\n")
        for n in range(rows):
            bad = n % 1000 == 999  # one row in a thousand names no label of the project
            label = "cat" if bad else ("pos", "neg", "neu")[n % 3]
            f.write(f"e{n},some text of row {n} for the import,web,{label},v1,0.6,0.3,0.1,2026-11-01T00:00:00Z\n")


def test_a_large_csv_streams_with_bounded_memory(project, user, media, tmp_path):
    path = tmp_path / "big.csv"
    write_csv(path, ROWS)
    with open(path, "rb") as f:
        job = import_create(project=project, actor=user, upload=File(f, name="big.csv"))
    job = import_start(job=job)
    started = time.perf_counter()
    tracemalloc.start()
    try:
        job = import_run(job_id=job.pk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    print(f"\n{ROWS:,} rows in {elapsed:.1f} s, tracemalloc peak {peak / 2**20:.1f} MB")
    assert job.status == ImportStatus.DONE
    bad = ROWS // 1000
    assert (job.rows_read, job.created, job.rejected) == (ROWS, ROWS - bad, bad)
    assert Item.objects.filter(project=project).count() == ROWS - bad
    assert peak < PEAK_LIMIT
