"""A small project whose review queue holds the cases the review pane explains: a consensus no
annotator chose (majority bug; a tie), a unanimous label the run's consensus contradicts, and a
consensus some annotators chose. Made directly (a done run and its per-item results), so each case
is exact."""

from django.utils import timezone

from labeling.models import Item, Prediction, QualityItemResult, QualityRun, Role
from labeling.services.projects import LabelSpec
from tests.labeling.factories import ProjectFactory, UserFactory, add_member, annotate

LABELS = [
    LabelSpec("bug", "Bug", "Something does not work.", "1"),
    LabelSpec("feature", "Feature", "A request for something new.", "2"),
    LabelSpec("billing", "Billing", "Invoices, charges, refunds.", "3"),
]

# external id: (annotators' labels, run consensus, quality, settled unanimously before the run)
CASES = {
    "ticket-00264": (["bug", "bug", "billing"], "feature", 0.12, False),
    "ticket-unanimous": (["bug", "bug", "bug"], "feature", 0.21, True),
    "ticket-tie": (["bug", "billing"], "feature", 0.31, False),
    "ticket-plain": (["bug", "bug", "feature"], "bug", 0.41, False),
}


def review_project():
    """(project, manager, reviewer, {external_id: item}); the review queue serves the cases in CASES order."""
    manager = UserFactory()
    project = ProjectFactory(creator=manager, labels=LABELS, annotations_per_item=3)
    users = [add_member(project, UserFactory(), Role.ANNOTATOR) for _ in range(3)]
    reviewer = add_member(project, UserFactory(), Role.REVIEWER)
    now = timezone.now()
    run = QualityRun.objects.create(project=project, status="done", method="crowdlab", finished_at=now)
    items = {}
    for ext, (labels, consensus, quality, unanimous) in CASES.items():
        item = Item.objects.create(
            project=project,
            external_id=ext,
            payload={"text": f"{ext}: the invoice page crashes"},
            required_annotations=3,
        )
        annotate(item, list(zip(users, labels)), settle_item=unanimous)
        Item.objects.filter(pk=item.pk).update(status="disputed")  # where the run leaves a doubted item
        Prediction.objects.create(
            item=item,
            model_version="prod-1",
            label="feature",
            probabilities={"bug": 0.1, "feature": 0.84, "billing": 0.06},
            predicted_at=now,
        )
        QualityItemResult.objects.create(
            run=run,
            item=item,
            consensus_label=consensus,
            quality=quality,
            agreement=sum(lab == consensus for lab in labels) / len(labels),
            num_annotations=len(labels),
            active_learning_score=quality,
            label_issue=False,
            outcome="review",
        )
        items[ext] = Item.objects.get(pk=item.pk)
    return project, manager, reviewer, items
