"""API for comments on items and the caller's @mentions (labeling.services.comments and
labeling.selectors.comments; the blind rule for annotators is documented there)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from common.api import inputs
from common.api.base import ApiView
from common.api.errors import ERRORS
from labeling.selectors.comments import comment_item, comments_visible, mentions_of
from labeling.services.comments import MAX_COMMENT, comment_delete, comment_post


class ItemCommentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    item = serializers.IntegerField(source="item_id")
    author = serializers.CharField(source="author.username")
    text = serializers.CharField()
    created_at = serializers.DateTimeField()
    mentions = serializers.SerializerMethodField()
    own = serializers.SerializerMethodField()

    def get_mentions(self, obj) -> list[str]:
        return sorted(u.username for u in obj.mentions.all())

    def get_own(self, obj) -> bool:
        return obj.author_id == self.context["user"].pk


class ItemCommentInput(inputs.Input):
    text = serializers.CharField(max_length=MAX_COMMENT)


class ItemCommentsApi(ApiView):
    """GET: the comments the caller may read on an item; POST: add one (@username mentions members)."""

    @extend_schema(responses={200: ItemCommentOutput(many=True), **ERRORS}, operation_id="item_comments_list")
    def get(self, request, item_id):
        item = comment_item(user=request.user, item_id=item_id)
        rows = comments_visible(user=request.user, item=item)
        return Response(ItemCommentOutput(rows, many=True, context={"user": request.user}).data)

    @extend_schema(
        request=ItemCommentInput, responses={201: ItemCommentOutput, **ERRORS}, operation_id="item_comments_create"
    )
    def post(self, request, item_id):
        item = comment_item(user=request.user, item_id=item_id)
        data = ItemCommentInput(data=request.data)
        data.is_valid(raise_exception=True)
        comment = comment_post(item=item, author=request.user, text=data.validated_data["text"])
        return Response(ItemCommentOutput(comment, context={"user": request.user}).data, status=status.HTTP_201_CREATED)


class CommentDetailApi(ApiView):
    @extend_schema(request=None, responses={204: None, **ERRORS}, operation_id="comments_delete")
    def delete(self, request, comment_id):
        comment_delete(user=request.user, comment_id=comment_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ItemMentionOutput(serializers.Serializer):
    comment = ItemCommentOutput()
    project = serializers.IntegerField(source="comment.item.project_id")
    external_id = serializers.CharField(source="comment.item.external_id")
    created_at = serializers.DateTimeField()


class MyMentionsApi(ApiView):
    """The caller's newest mentions (100), newest first, only on comments they may still read."""

    @extend_schema(responses={200: ItemMentionOutput(many=True), **ERRORS}, operation_id="me_mentions")
    def get(self, request):
        rows = mentions_of(user=request.user)
        return Response(ItemMentionOutput(rows, many=True, context={"user": request.user}).data)
