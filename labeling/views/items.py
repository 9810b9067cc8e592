"""The item explorer page (search, filter, sort, page through a project's items; managers act on a
selection) and the item page (payload, annotations, predictions, label history). Both read through
labeling.selectors.items_explorer, so blind labeling holds exactly as in the API; bulk actions go
through the API (POST /api/projects/{id}/items/bulk) from static/loupe/items.js."""

from __future__ import annotations

import json
import re

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.utils.html import escape
from django.utils.safestring import mark_safe

from common.db.search import query_words
from common.errors import ValidationFailed
from labeling.api.views_items_explorer import FIELD_PREFIX, ORDERING_CHOICES, filters_from
from labeling.models import ItemStatus, Role
from labeling.selectors.items_explorer import item_detail, item_explore
from labeling.selectors.projects import project_labels
from labeling.services.items_bulk import MAX_ITEMS
from labeling.views.projects import page_project

PAGE_SIZE = 50
SNIPPET = 180
FORM_KEYS = (
    "q",
    "status",
    "label",
    "predicted",
    "model_version",
    "confidence_min",
    "confidence_max",
    "disagreement",
    "annotator",
    "created_after",
    "created_before",
)
SORTS = {"created": "Created", "priority": "Priority", "confidence": "Confidence", "updated": "Updated"}


def payload_text(payload) -> str:
    """The text a person reads first: payload["text"] when it is a string, else the string values."""
    if isinstance(payload, dict):
        if isinstance(payload.get("text"), str):
            return payload["text"]
        return " · ".join(str(v) for v in payload.values() if isinstance(v, (str, int, float)))
    return json.dumps(payload)[: SNIPPET * 2]


def highlight(text: str, words: list[str], *, length: int | None = SNIPPET) -> str:
    """`text` escaped, cut around the first matched word when `length` is set, each word in <mark>."""
    if length and len(text) > length:
        start = 0
        low = text.lower()
        hits = [low.find(w) for w in words if low.find(w) >= 0]
        if hits:
            start = max(0, min(hits) - length // 3)
        text = ("…" if start else "") + text[start : start + length] + ("…" if start + length < len(text) else "")
    out = escape(text)
    if words:
        pattern = re.compile("|".join(re.escape(escape(w)) for w in sorted(set(words), key=len, reverse=True)), re.I)
        out = pattern.sub(lambda m: f"<mark>{m.group(0)}</mark>", out)
    return mark_safe(out)


@login_required
def items_page(request, project_id):
    project = page_project(request, project_id)
    params = request.GET.copy()
    for key in list(params):  # an empty form control means "any"
        if params.get(key, "") == "" and key != "page":
            del params[key]
    error = None
    rows, has_next = [], False
    ordering = params.get("ordering") if params.get("ordering") in ORDERING_CHOICES else None
    try:
        page = max(1, int(params.get("page", "1")))
    except ValueError:
        page = 1
    filter_params = params.copy()
    for key in ("ordering", "page"):
        filter_params.pop(key, None)
    unknown = sorted(k for k in filter_params if k not in FORM_KEYS and not k.startswith(FIELD_PREFIX))
    try:
        if unknown:
            raise ValidationFailed(f"Unknown filter: {', '.join(unknown)}.")
        filters = filters_from(filter_params)
        qs, order = item_explore(project=project, user=request.user, filters=filters, ordering=ordering)
        start = (page - 1) * PAGE_SIZE
        rows = list(qs.order_by(*order)[start : start + PAGE_SIZE + 1])
        has_next = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
    except ValidationFailed as exc:
        error = exc.message
    words = query_words(params.get("q", ""))
    for r in rows:
        r.snippet = highlight(payload_text(r.payload), words)
        r.shown_status = ItemStatus.OPEN if r.reopen_requested else r.status
    base = params.copy()
    base.pop("page", None)

    def link(**changes):
        q = base.copy()
        for k, v in changes.items():
            q.pop(k, None)
            if v is not None:
                q[k] = str(v)
        return "?" + q.urlencode()

    sorts = []
    for key, title in SORTS.items():
        current = ordering.lstrip("-") == key if ordering else False
        desc = bool(ordering and ordering.startswith("-"))
        target = key if (current and desc) else f"-{key}"
        arrow = ("▼" if desc else "▲") if current else ""
        sorts.append({"key": key, "title": title, "href": link(ordering=target), "arrow": arrow})
    return render(
        request,
        "labeling/items.html",
        {
            "project": project,
            "rows": rows,
            "error": error,
            "params": params,
            "page": page,
            "prev_href": link(page=page - 1) if page > 1 else None,
            "next_href": link(page=page + 1) if has_next else None,
            "sorts": {s["key"]: s for s in sorts},
            "statuses": ItemStatus.choices,
            "labels": project_labels(project=project),
            "is_manager": request.user.is_staff or project.user_role == Role.MANAGER,
            "bulk_cap": f"{MAX_ITEMS:,}",
            "filtered": bool(filter_params),
            "advanced": any(k != "q" for k in filter_params),
        },
    )


@login_required
def item_page(request, project_id, item_id):
    project = page_project(request, project_id)
    detail = item_detail(project=project, user=request.user, item_id=item_id)
    if detail is None:
        raise Http404("Item not found")
    item = detail["item"]
    return render(
        request,
        "labeling/item.html",
        {
            "project": project,
            "item": item,
            "d": detail,
            "status": ItemStatus.OPEN if item.reopen_requested else item.status,
            "payload_text": payload_text(item.payload),
            "payload_json": json.dumps(item.payload, indent=2, ensure_ascii=False, sort_keys=True),
            "back": back if (back := request.GET.get("back", "")).startswith("?") else "",
        },
    )
