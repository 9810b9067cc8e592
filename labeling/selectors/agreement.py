"""Agreement between annotators: the figures of GET /api/projects/{id}/agreement and the quality
page's agreement card, each with a definition in words of what it is computed over.

Computed from the current annotations on each request, in NumPy over one bulk read
(common.db.columns), rather than stored; the math is labeling.stats.consensus (the krippendorff
package, statsmodels, scikit-learn).

Raw SQL: the bulk read of every annotation comes back as NumPy columns (common.db.columns).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from django.contrib.auth import get_user_model

from common.db.columns import label_case, read_columns
from labeling.models import Annotation, LabelClass
from labeling.stats import consensus

User = get_user_model()
MIN_SHARED_FOR_KAPPA = 20
MAX_PAIRS = 500

ALPHA_DEFINITION = (
    "Krippendorff's alpha (nominal; the krippendorff package) over every label of every item with at "
    "least 2 labels: alpha takes items with different numbers of labels as they are, so escalated items "
    "count with all their labels."
)
FLEISS_DEFINITION = (
    "Fleiss' kappa (statsmodels) over the first {k} labels, in the order they were given, of every item "
    "with at least {k} labels ({k}: the project's annotations per item, at least 2). Later labels "
    "(escalations) and items with fewer labels are left out, so every item counts {k} raters."
)
PAIRWISE_DEFINITION = (
    "Cohen's kappa (scikit-learn) of each pair of annotators sharing at least {n} items, over the items "
    "both labeled; at most the {max} pairs sharing the most items."
)
OBSERVED_DEFINITION = (
    "Share of agreeing label pairs within items with at least 2 labels (Krippendorff's coincidences: an "
    "item with m labels weighs its pairs by 1/(m-1))."
)


def project_agreement(*, project) -> dict:
    """Krippendorff's alpha (nominal) over all labels, Fleiss' kappa over the first k labels of every
    item with at least k, pairwise Cohen's kappa for annotator pairs sharing >= 20 items, and the
    label-by-label coincidence ("confusion") between annotators; each figure with its definition."""
    keys = list(LabelClass.objects.filter(project=project).order_by("position", "id").values_list("key", flat=True))
    k = len(keys)
    label_sql, label_params = label_case("a.label", keys)
    # (as a quality run reads them: by the annotation's own project, annotator ids and label codes in
    # 4 and 2 bytes, factorized by hashing rather than sorting; in annotation order, which the
    # (project, id) index gives, for Fleiss' first k labels)
    cols = read_columns(
        f"SELECT a.item_id, a.annotator_id, {label_sql} FROM {Annotation._meta.db_table} a WHERE a.project_id = %s "
        "ORDER BY a.id",
        [*label_params, project.pk],
        {"item_id": np.int64, "annotator_id": np.int32, "label": np.int16},
    )
    ok = cols["label"] >= 0
    item_idx, item_ids = pd.factorize(cols["item_id"][ok], sort=True)
    annot_idx, annot_ids = pd.factorize(cols["annotator_id"][ok], sort=True)
    annot_ids = annot_ids.astype(np.int64)
    codes = cols["label"][ok].astype(np.int64)
    counts = np.zeros((len(item_ids), k), dtype=np.int64)
    np.add.at(counts, (item_idx, codes), 1)
    per_item = counts.sum(axis=1)
    pairable = per_item >= 2

    o = consensus.coincidence_matrix(counts)
    n_pairable = float(o.sum())
    observed = float(np.trace(o) / n_pairable) if n_pairable else None
    row_sums = o.sum(axis=1, keepdims=True)
    rates = np.divide(o, row_sums, out=np.zeros_like(o), where=row_sums > 0)

    fleiss = None
    if pairable.any():
        overlap = max(2, int(project.annotations_per_item))
        table = consensus.first_k_counts(item_idx, codes, overlap, k)
        fleiss = {
            "value": consensus.fleiss_kappa(table) if len(table) else None,
            "annotations_per_item": overlap,
            "items": int(len(table)),
            "items_with_fewer": int((pairable & (per_item < overlap)).sum()),
            "labels_left_out": int(np.maximum(per_item[per_item >= overlap] - overlap, 0).sum()),
            "definition": FLEISS_DEFINITION.format(k=overlap),
        }

    pairs = _pairwise_kappa(item_idx, annot_idx, codes, annot_ids, k)
    usernames = dict(User.objects.filter(pk__in=annot_ids.tolist()).values_list("pk", "username"))
    for p in pairs:
        p["annotator_a"] = usernames.get(p.pop("a"), "?")
        p["annotator_b"] = usernames.get(p.pop("b"), "?")
    return {
        "annotations": int(len(codes)),
        "annotators": int(len(annot_ids)),
        "items": int(len(item_ids)),
        "items_with_2_or_more": int(pairable.sum()),
        "observed_agreement": observed,
        "krippendorff_alpha": consensus.krippendorff_alpha_nominal(counts),
        "fleiss_kappa": fleiss,
        "pairwise_cohen_kappa": pairs,
        "min_shared_items": MIN_SHARED_FOR_KAPPA,
        "definitions": {
            "krippendorff_alpha": ALPHA_DEFINITION,
            "fleiss_kappa": FLEISS_DEFINITION.format(k=max(2, int(project.annotations_per_item))),
            "pairwise_cohen_kappa": PAIRWISE_DEFINITION.format(n=MIN_SHARED_FOR_KAPPA, max=MAX_PAIRS),
            "observed_agreement": OBSERVED_DEFINITION,
        },
        "confusion": {"labels": keys, "counts": o.round(3).tolist(), "rates": rates.round(4).tolist()},
    }


def _pairwise_kappa(item_idx, annot_idx, codes, annot_ids, k) -> list[dict]:
    m = len(annot_ids)
    if m < 2:
        return []
    from scipy import sparse

    b = sparse.csr_matrix(
        (np.ones(len(item_idx)), (annot_idx, item_idx)), shape=(m, int(item_idx.max()) + 1 if len(item_idx) else 0)
    )
    shared = (b @ b.T).toarray()
    np.fill_diagonal(shared, 0)
    ia, ib = np.nonzero(np.triu(shared >= MIN_SHARED_FOR_KAPPA))
    order = np.argsort(-shared[ia, ib], kind="stable")[:MAX_PAIRS]
    by_annot = {}
    sort = np.lexsort((item_idx, annot_idx))
    s_annot, s_item, s_code = annot_idx[sort], item_idx[sort], codes[sort]
    bounds = np.searchsorted(s_annot, np.arange(m + 1))
    for j in set(ia[order].tolist()) | set(ib[order].tolist()):
        by_annot[j] = (s_item[bounds[j] : bounds[j + 1]], s_code[bounds[j] : bounds[j + 1]])
    out = []
    for a, b_ in zip(ia[order].tolist(), ib[order].tolist()):
        items_a, codes_a = by_annot[a]
        items_b, codes_b = by_annot[b_]
        _, pa, pb = np.intersect1d(items_a, items_b, assume_unique=True, return_indices=True)
        out.append(
            {
                "a": int(annot_ids[a]),
                "b": int(annot_ids[b_]),
                "shared_items": int(len(pa)),
                "kappa": consensus.cohen_kappa(codes_a[pa], codes_b[pb], k),
            }
        )
    return out
