"""Template tags of on call for other apps' pages: `{% on_call_line project %}` renders who is on
call in the project (templates/alerts/_on_call.html); the bug queue loads it in its templates without
importing alerts."""

from django import template

from alerts.services.oncall import on_call_summary

register = template.Library()


@register.inclusion_tag("alerts/_on_call.html")
def on_call_line(project):
    return {"project": project, "on_call": on_call_summary(project)}
