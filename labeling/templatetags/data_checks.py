"""The project page's data-checks card: `{% load data_checks %}{% data_checks_card project %}`."""

from django import template

from labeling.selectors.data_quality import batch_checks_recent

register = template.Library()


@register.inclusion_tag("labeling/_data_checks_card.html")
def data_checks_card(project):
    return {"project": project, **batch_checks_recent(project=project)}
