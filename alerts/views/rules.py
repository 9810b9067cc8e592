"""Pages of alert rules and alerts: the rules page (rules with their action rate and flag, a form to
create and edit them, mute, the on-call rotation), the alerts page (recent alerts, acknowledge and
snooze with the keyboard), and the acknowledge link sent in messages. The pages write through the
JSON API (static/alerts/rules.js)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from alerts.models import Channel
from alerts.selectors.alerts import alert_by_token, alert_list
from alerts.selectors.rules import rule_list
from alerts.services.alerts import alert_acknowledge
from alerts.services.oncall import on_call_summary
from alerts.services.rules import PRIORITIES
from common.errors import NotFound
from common.events import EVENT_TYPES
from labeling.models import Membership, Role
from labeling.selectors.access import membership_role
from labeling.views.projects import page_project

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@login_required
def rules_page(request, project_id):
    """Reads each rule's action rate as stored by the periodic alerts_actions_update task."""
    from alerts.api.views_rules import rule_stored_data

    project = page_project(request, project_id)
    can_edit = project.user_role == Role.MANAGER
    rules = [rule_stored_data(r) for r in rule_list(project=project)]
    for r in rules:
        r["rate_pct"] = None if r["action_rate"] is None else round(100 * r["action_rate"])
    on_call = on_call_summary(project)
    members = Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    return render(
        request,
        "alerts/rules.html",
        {
            "project": project,
            "rules": rules,
            "can_edit": can_edit,
            "event_types": sorted(EVENT_TYPES.items()),
            "priorities": PRIORITIES,
            "channels": Channel.objects.filter(project=project).order_by("name"),
            "on_call": on_call,
            "handover_day": WEEKDAYS[on_call["handover_weekday"]],
            "weekdays": list(enumerate(WEEKDAYS)),
            "member_names": [m.user.username for m in members],
        },
    )


@login_required
def alerts_page(request, project_id):
    project = page_project(request, project_id)
    return render(
        request,
        "alerts/alerts.html",
        {
            "project": project,
            "alerts": alert_list(project=project, limit=100),
            "on_call": on_call_summary(project),
        },
    )


@require_http_methods(["GET", "POST"])
def alert_ack_page(request, token):
    """The link in alert messages. GET only shows the alert with a one-click Acknowledge button, to
    everyone holding the link (link previews and mail scanners fetch links); the button's POST
    (CSRF-checked) acknowledges, in the name of the signed-in member if there is one."""
    try:
        alert = alert_by_token(token=token)
    except NotFound:
        raise Http404("Alert not found")
    is_member = membership_role(user=request.user, project_id=alert.project_id) is not None
    if request.method == "POST":
        alert = alert_acknowledge(alert=alert, user=request.user if is_member else None)
    return render(request, "alerts/_alert_ack.html", {"alert": alert, "is_member": is_member}, status=200)
