import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from labeling.models import Item, Prediction, Role
from labeling.services.projects import LabelSpec, member_add, project_create

DEFAULT_LABELS = [
    LabelSpec("pos", "Positive", "Clearly positive sentiment.", "1"),
    LabelSpec("neg", "Negative", "Clearly negative sentiment.", "2"),
    LabelSpec("neu", "Neutral", "Neither.", "3"),
]
PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class ProjectFactory(factory.Factory):
    """Projects are made through the service so that every invariant (manager, counter) holds."""

    class Meta:
        model = dict

    creator = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"Project {n}")
    labels = factory.LazyFunction(lambda: list(DEFAULT_LABELS))
    annotations_per_item = 3

    @classmethod
    def _create(cls, model_class, **kwargs):
        return project_create(**kwargs)

    _build = _create


def add_member(project, user=None, role=Role.ANNOTATOR):
    user = user or UserFactory()
    member_add(project=project, username=user.username, role=role)
    return user


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    project = None
    external_id = factory.Sequence(lambda n: f"ext-{n}")
    payload = factory.LazyAttribute(lambda o: {"text": f"text for {o.external_id}"})
    required_annotations = factory.LazyAttribute(lambda o: o.project.annotations_per_item)
    queue_order = factory.LazyAttribute(lambda o: o.project.queue_order)


class PredictionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prediction

    item = None
    model_version = "v1"
    label = "pos"
    probabilities = None
    predicted_at = factory.LazyFunction(timezone.now)
