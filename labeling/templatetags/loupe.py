from django import template

register = template.Library()


@register.filter
def duration(seconds):
    """Seconds -> a short human duration: 45 s, 12 min, 3.5 h, 7 d."""
    if seconds is None or seconds == "":
        return "—"
    s = float(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


@register.filter
def pct(value, digits=0):
    if value is None:
        return "—"
    return f"{100 * float(value):.{int(digits)}f}%"
