"""Template access to item comments: `{% item_comments_for item as comments %}` gives the comments the
signed-in reader may see (labeling.selectors.comments applies the blind rule)."""

from django import template

from labeling.selectors.comments import comments_for_page

register = template.Library()


@register.simple_tag(takes_context=True)
def item_comments_for(context, item):
    request = context.get("request")
    if request is None or item is None:
        return []
    return comments_for_page(user=request.user, item=item)
