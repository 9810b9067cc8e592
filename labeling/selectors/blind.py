"""Blind labeling: which items' labels a member may see, for every read that shows a label (a
prediction, an expected label, ground truth, a consensus, probabilities), in the API and the pages.

Reviewers, managers and staff see every label of their project. An annotator sees an item's labels
only once it is closed for them: resolved AND never to be served to them again (the queue gives each
annotator one annotate assignment per item, ever); anything else could still reach their queue.
Lists apply `LabelVisibility.q(prefix)` in SQL; reads holding rows ask `visible_ids`. Hidden labels
are left out (counted) or null, never replaced by a made-up value."""

from dataclasses import dataclass

from django.db.models import BooleanField, Case, Exists, F, OuterRef, Q, Value, When

from labeling.models import Assignment, AssignmentKind, ItemStatus, Role


@dataclass(frozen=True)
class LabelVisibility:
    """What one user may see of one project's labels. `all` is True for reviewers, managers and staff."""

    user_id: int | None
    all: bool

    def q(self, prefix: str = "") -> Q:
        """A filter over items (`prefix` "") or rows with an item (`prefix` "item__"): the rows whose
        labels this user may see. Rows without an item are hidden from an annotator."""
        if self.all:
            return Q()
        if self.user_id is None:
            return Q(pk__in=[])
        ref = f"{prefix}pk" if prefix else "pk"
        held = Assignment.objects.filter(item_id=OuterRef(ref), annotator_id=self.user_id, kind=AssignmentKind.ANNOTATE)
        return Q(**{f"{prefix}status": ItemStatus.RESOLVED}) & Q(Exists(held))

    def flag(self, prefix: str = ""):
        """The same rule as an expression to annotate rows with (True: labels visible)."""
        if self.all:
            return Value(True, output_field=BooleanField())
        return Case(When(self.q(prefix), then=Value(True)), default=Value(False), output_field=BooleanField())

    def label(self, field: str, prefix: str = ""):
        """`field` where the row's labels are visible, NULL elsewhere (for .values() reads)."""
        if self.all:
            return F(field)
        return Case(When(self.q(prefix), then=F(field)), default=Value(None))

    def visible_ids(self, item_ids) -> set:
        """Of these item ids, those whose labels this user may see (one query; none for reviewers)."""
        from labeling.models import Item

        ids = {i for i in item_ids if i is not None}
        if self.all or not ids:
            return ids
        return set(Item.objects.filter(self.q(), pk__in=ids).values_list("pk", flat=True))


def labels_visible_to(*, user, project) -> LabelVisibility:
    """The blind-labeling rule for `user` in `project`. `project.user_role` (set by access_project)
    is used when present; staff see everything."""
    if not getattr(user, "is_authenticated", False):
        return LabelVisibility(user_id=None, all=False)
    role = getattr(project, "user_role", None)
    if role is None:
        from labeling.selectors.access import membership_role

        role = membership_role(user=user, project_id=project.pk)
    return LabelVisibility(user_id=user.pk, all=bool(user.is_staff) or role in (Role.REVIEWER, Role.MANAGER))
