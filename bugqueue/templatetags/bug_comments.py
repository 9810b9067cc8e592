"""Template filter for bug comments: the body, escaped, with each recorded @mention highlighted."""

from django import template
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe

from labeling.services.comments import MENTION_RE

register = template.Library()


@register.filter
def comment_html(comment):
    """The comment's body as HTML: escaped text, `@name` in a highlight when that member was mentioned
    (uses the prefetched `mentions`)."""
    names = {u.username for u in comment.mentions.all()}
    out, last = [], 0
    for match in MENTION_RE.finditer(comment.body):
        name = match.group(1).rstrip(".")
        if name not in names:
            continue
        start, end = match.start(), match.start() + 1 + len(name)
        out.append(conditional_escape(comment.body[last:start]))
        out.append(format_html('<strong class="bq-mention">@{}</strong>', name))
        last = end
    out.append(conditional_escape(comment.body[last:]))
    return mark_safe("".join(str(part) for part in out))
