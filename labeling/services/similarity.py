"""Keep each project's nearest-neighbour index in step with its items, and query it.

- Fit: TF-IDF over payload text (or StandardScaler over numeric payload fields) on a sample of the
  project's items, then vectorise every item in chunks into immutable segment files.
- Step: items that arrive later are vectorised with the fitted vectoriser and appended as a new
  segment (`indexed_through_id` is the watermark); many small segments are compacted into one.
- Refit: when the project has grown to REFIT_GROWTH × what the vectoriser saw, a new generation is
  built and the old one dropped.
- Query (`similar_items`): rows are L2-normalised, so cosine similarity is a sparse dot product;
  each candidate's score is its best similarity to any query item. No refit, no re-vectorising.
"""

import io
import logging
import pickle
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from labeling.models import Item, SimilarityIndex, SimilaritySegment

log = logging.getLogger(__name__)

CHUNK = 20_000
FIT_SAMPLE = 100_000
REFIT_GROWTH = 2.0
MAX_SEGMENTS = 12
MAX_NUMERIC_FIELDS = 64


def item_text(payload) -> str:
    if not isinstance(payload, dict):
        return ""
    text = payload.get("text")
    if isinstance(text, str):
        return text
    return " ".join(str(v) for v in payload.values() if isinstance(v, str))


def _numeric_fields(payloads) -> list[str]:
    counts = {}
    for p in payloads:
        if isinstance(p, dict):
            for k, v in p.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    counts[k] = counts.get(k, 0) + 1
    return [k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_NUMERIC_FIELDS]]


@dataclass
class NumericVectorizer:
    fields: list
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, payloads, fields):
        raw = cls._raw(payloads, fields, None)
        mean = np.nanmean(raw, axis=0) if len(raw) else np.zeros(len(fields))
        mean = np.where(np.isnan(mean), 0.0, mean)
        std = np.nanstd(raw, axis=0) if len(raw) else np.ones(len(fields))
        std = np.where((std == 0) | np.isnan(std), 1.0, std)
        return cls(fields, mean, std)

    @staticmethod
    def _raw(payloads, fields, mean):
        out = np.full((len(payloads), len(fields)), np.nan, dtype=np.float64)
        for i, p in enumerate(payloads):
            if isinstance(p, dict):
                for j, k in enumerate(fields):
                    v = p.get(k)
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        out[i, j] = v
        if mean is not None:
            nan_r, nan_c = np.where(np.isnan(out))
            out[nan_r, nan_c] = mean[nan_c]
        return out

    def transform(self, payloads):
        z = (self._raw(payloads, self.fields, self.mean) - self.mean) / self.std
        return sp.csr_matrix(z.astype(np.float32))


def _vectorize(kind, vectorizer, payloads):
    if kind == SimilarityIndex.Kind.TEXT:
        m = vectorizer.transform([item_text(p) for p in payloads])
    else:
        m = vectorizer.transform(payloads)
    return normalize(m.astype(np.float32), norm="l2", copy=False).tocsr()


def _fit(project_id):
    total = Item.objects.filter(project_id=project_id).count()
    step = max(1, total // FIT_SAMPLE)
    ids = Item.objects.filter(project_id=project_id).order_by("id").values_list("id", flat=True)
    if step > 1:
        sample = list(
            Item.objects.filter(project_id=project_id, id__in=list(ids[::step])[:FIT_SAMPLE]).values_list(
                "payload", flat=True
            )
        )
    else:
        sample = list(Item.objects.filter(project_id=project_id).values_list("payload", flat=True)[:FIT_SAMPLE])
    texts = [item_text(p) for p in sample]
    with_text = sum(1 for t in texts if t.strip())
    fields = _numeric_fields(sample)
    if with_text >= len(sample) / 2 or not fields:
        kind = SimilarityIndex.Kind.TEXT
        vec = TfidfVectorizer(
            sublinear_tf=True,
            min_df=2 if len(texts) >= 1000 else 1,
            max_features=200_000,
            dtype=np.float32,
            strip_accents="unicode",
        )
        try:
            vec.fit(texts)
        except ValueError:  # empty vocabulary: fall back to character n-grams
            vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), dtype=np.float32).fit(texts or [" "])
    else:
        kind = SimilarityIndex.Kind.NUMERIC
        vec = NumericVectorizer.fit(sample, fields)
    return kind, vec, total


def _save_bytes(path, data: bytes) -> str:
    return default_storage.save(path, ContentFile(data))


def _write_segment(index, item_ids, matrix):
    buf = io.BytesIO()
    np.savez(
        buf,
        item_ids=np.asarray(item_ids, dtype=np.int64),
        data=matrix.data,
        indices=matrix.indices,
        indptr=matrix.indptr,
        shape=np.asarray(matrix.shape),
    )
    path = _save_bytes(
        f"similarity/{index.project_id}/g{index.generation}-{item_ids[0]}-{item_ids[-1]}.npz", buf.getvalue()
    )
    return SimilaritySegment.objects.create(
        index=index,
        generation=index.generation,
        path=path,
        first_item_id=item_ids[0],
        last_item_id=item_ids[-1],
        n_rows=len(item_ids),
    )


@lru_cache(maxsize=128)
def _load_segment(path):
    with default_storage.open(path, "rb") as fh:
        z = np.load(io.BytesIO(fh.read()))
        m = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        return z["item_ids"], m


@lru_cache(maxsize=8)
def _load_vectorizer(path):
    with default_storage.open(path, "rb") as fh:
        return pickle.loads(fh.read())


def _append_items(index, vectorizer, after_id):
    """Vectorise items with id > after_id in chunks; returns the new watermark and rows added."""
    last, added = after_id, 0
    while True:
        chunk = list(
            Item.objects.filter(project_id=index.project_id, id__gt=last)
            .order_by("id")
            .values_list("id", "payload")[:CHUNK]
        )
        if not chunk:
            return last, added
        ids = [c[0] for c in chunk]
        _write_segment(index, ids, _vectorize(index.kind, vectorizer, [c[1] for c in chunk]))
        last, added = ids[-1], added + len(ids)


def _compact(index):
    segments = list(index.segments.filter(generation=index.generation).order_by("first_item_id"))
    if len(segments) <= MAX_SEGMENTS:
        return
    parts = [_load_segment(s.path) for s in segments]
    ids = np.concatenate([p[0] for p in parts])
    _write_segment(index, ids.tolist(), sp.vstack([p[1] for p in parts], format="csr"))
    for s in segments:
        default_storage.delete(s.path)
        s.delete()


@transaction.atomic
def similarity_index_update(*, project_id: int, force_refit: bool = False) -> SimilarityIndex | None:
    """Bring the project's index up to date (idempotent; concurrent callers serialize on the row)."""
    index = SimilarityIndex.objects.select_for_update().filter(project_id=project_id).first()
    n_items = Item.objects.filter(project_id=project_id).count()
    if n_items == 0:
        return index
    refit = (
        force_refit or index is None or n_items >= max(REFIT_GROWTH * max(index.fitted_on, 1), index.fitted_on + 1000)
    )
    if refit:
        kind, vectorizer, fitted_on = _fit(project_id)
        generation = 1 if index is None else index.generation + 1
        vec_path = _save_bytes(f"similarity/{project_id}/g{generation}-vectorizer.pkl", pickle.dumps(vectorizer))
        if index is None:
            index = SimilarityIndex.objects.create(
                project_id=project_id,
                kind=kind,
                generation=generation,
                vectorizer_path=vec_path,
                fitted_on=fitted_on,
                fitted_at=timezone.now(),
            )
            index = SimilarityIndex.objects.select_for_update().get(pk=project_id)
        else:
            old = list(index.segments.all())
            old_vec = index.vectorizer_path
            index.kind, index.generation, index.vectorizer_path = kind, generation, vec_path
            index.fitted_on, index.fitted_at, index.indexed_through_id, index.n_rows = fitted_on, timezone.now(), 0, 0
            index.save()
            paths = [s.path for s in old] + [old_vec]
            SimilaritySegment.objects.filter(pk__in=[s.pk for s in old]).delete()
            transaction.on_commit(lambda paths=paths: [default_storage.delete(p) for p in paths])
    vectorizer = _load_vectorizer(index.vectorizer_path)
    watermark, added = _append_items(index, vectorizer, index.indexed_through_id)
    if added or refit:
        index.indexed_through_id, index.n_rows = watermark, index.n_rows + added
        index.save(update_fields=["indexed_through_id", "n_rows", "updated_at"])
        _compact(index)
        log.info("similarity index of project %s: +%s rows (generation %s)", project_id, added, index.generation)
    return index


def similar_items(*, project_id: int, item_ids, n: int, exclude_item_ids=()) -> list[tuple[int, float]]:
    """The n items most similar to any of `item_ids` (best cosine to any of them), excluding the
    query items and `exclude_item_ids`. Reads the precomputed index; items not yet indexed are
    vectorised on the fly with the fitted vectoriser."""
    index = SimilarityIndex.objects.filter(project_id=project_id).first()
    if index is None or n <= 0:
        return []
    vectorizer = _load_vectorizer(index.vectorizer_path)
    segments = [
        _load_segment(s.path) for s in index.segments.filter(generation=index.generation).order_by("first_item_id")
    ]
    if not segments:
        return []
    query_ids = list(dict.fromkeys(int(i) for i in item_ids))
    payloads = dict(Item.objects.filter(project_id=project_id, id__in=query_ids).values_list("id", "payload"))
    if not payloads:
        return []
    q = _vectorize(index.kind, vectorizer, [payloads[i] for i in query_ids if i in payloads])
    excluded = set(query_ids) | {int(i) for i in exclude_item_ids}
    best_ids, best_scores = [], []
    for seg_ids, matrix in segments:
        scores = (matrix @ q.T).toarray().max(axis=1) if q.shape[0] else np.zeros(matrix.shape[0])
        if excluded:
            scores[np.isin(seg_ids, np.fromiter(excluded, dtype=np.int64))] = -np.inf
        k = min(n, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        best_ids.append(seg_ids[top])
        best_scores.append(scores[top])
    ids = np.concatenate(best_ids)
    scores = np.concatenate(best_scores)
    order = np.argsort(-scores, kind="stable")[:n]
    return [(int(ids[i]), float(scores[i])) for i in order if np.isfinite(scores[i])]
