"""The review pane renders the item's comments on the server (the partial _item_comments.html)."""

import pytest
from django.test import Client

from labeling.models import ItemComment
from tests.labeling.review_data import review_project


@pytest.mark.django_db
def test_review_pane_shows_the_items_comments():
    project, manager, reviewer, items = review_project()
    ItemComment.objects.create(item=items["ticket-00264"], author=manager, text="Check the <invoice> @rex")
    c = Client()
    c.force_login(reviewer)
    html = c.post(f"/projects/{project.pk}/review/next").content.decode()
    assert 'id="review-external-id">ticket-00264<' in html
    assert f'class="item-comments" data-item="{items["ticket-00264"].pk}"' in html
    assert "Check the &lt;invoice&gt; @rex" in html
    assert "loupe/comments.js" in html
    nxt = c.post(f"/projects/{project.pk}/review/items/{items['ticket-00264'].pk}/resolve", {"label": "bug"})
    assert "No comments yet." in nxt.content.decode()
