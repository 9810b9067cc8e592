import pytest

from labeling.models import SimilarityIndex, SimilaritySegment
from labeling.services import similarity
from labeling.services.ingestion import items_ingest
from labeling.services.similarity import similar_items, similarity_index_update

pytestmark = pytest.mark.django_db

TOPICS = {
    "refund": "please refund my double charge on the invoice",
    "crash": "the app crashes with an error when I export the report",
    "parcel": "my parcel never arrived and the tracking number is wrong",
}


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    similarity._load_segment.cache_clear()
    similarity._load_vectorizer.cache_clear()


def ingest(project, start, n):
    rows = []
    for i in range(start, start + n):
        topic = list(TOPICS)[i % 3]
        rows.append({"external_id": f"{topic}-{i}", "payload": {"text": f"{TOPICS[topic]} case {i}"}})
    items_ingest(project=project, rows=rows)


def ids(project, prefix):
    return set(project.items.filter(external_id__startswith=prefix).values_list("id", flat=True))


def test_similar_items_are_from_the_same_topic_and_exclude_what_is_asked(project):
    ingest(project, 0, 60)
    similarity_index_update(project_id=project.id)
    query = sorted(ids(project, "refund-"))[:2]
    excluded = sorted(ids(project, "refund-"))[2:5]
    found = similar_items(project_id=project.id, item_ids=query, n=10, exclude_item_ids=excluded)
    found_ids = [i for i, _ in found]
    assert len(found_ids) == 10 and set(found_ids) <= ids(project, "refund-")
    assert not set(found_ids) & (set(query) | set(excluded))
    scores = [s for _, s in found]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0.5


def test_new_items_are_appended_without_refit_and_refit_on_growth(project):
    ingest(project, 0, 30)
    index = similarity_index_update(project_id=project.id)
    assert index.n_rows == 30 and index.generation == 1
    ingest(project, 30, 6)
    index = similarity_index_update(project_id=project.id)
    assert index.generation == 1 and index.n_rows == 36  # appended with the fitted vectoriser
    assert SimilaritySegment.objects.filter(index=index).count() == 2
    again = similarity_index_update(project_id=project.id)  # idempotent
    assert again.n_rows == 36 and SimilaritySegment.objects.filter(index=index).count() == 2
    newest = max(ids(project, "parcel-"))
    found = [i for i, _ in similar_items(project_id=project.id, item_ids=[min(ids(project, "parcel-"))], n=12)]
    assert newest in found
    index = similarity_index_update(project_id=project.id, force_refit=True)
    assert index.generation == 2 and index.n_rows == 36
    assert SimilaritySegment.objects.filter(index=index).count() == 1


def test_many_small_segments_are_compacted(project, monkeypatch):
    monkeypatch.setattr(similarity, "MAX_SEGMENTS", 3)
    ingest(project, 0, 30)
    similarity_index_update(project_id=project.id)
    for start in range(30, 45, 3):
        ingest(project, start, 3)
        similarity_index_update(project_id=project.id)
    index = SimilarityIndex.objects.get(project=project)
    assert index.n_rows == 45 and index.segments.count() <= 3
    assert len(similar_items(project_id=project.id, item_ids=[min(ids(project, "crash-"))], n=100)) == 44


def test_numeric_payloads_use_standardised_fields(project):
    rows = [
        {"external_id": f"n{i}", "payload": {"amount": float(i % 2) * 1000 + i, "age": 30 + (i % 2) * 40}}
        for i in range(40)
    ]
    items_ingest(project=project, rows=rows)
    index = similarity_index_update(project_id=project.id)
    assert index.kind == "numeric"
    even = project.items.get(external_id="n0").id
    found = [i for i, _ in similar_items(project_id=project.id, item_ids=[even], n=5)]
    ext = dict(project.items.values_list("id", "external_id"))
    assert all(int(ext[i][1:]) % 2 == 0 for i in found)


def test_ingestion_enqueues_an_index_update_after_commit(project, django_capture_on_commit_callbacks, monkeypatch):
    calls = []
    from labeling import tasks

    monkeypatch.setattr(tasks.similarity_index_update_task, "delay", lambda pid: calls.append(pid))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ingest(project, 0, 3)
    assert calls == []  # nothing before commit
    for cb in callbacks:
        cb()
    assert calls == [project.id]
