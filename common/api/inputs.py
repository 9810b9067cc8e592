"""The base of every request body serializer (`class Input(inputs.Input)`): what a body says is what
is stored, or a 400 that names the field. An unknown field is an error (never silently dropped); an
unbounded integer field gets its column's bounds (ID for identifiers); a float refuses NaN and the
infinities; a time is a TimestampField, read as every other time (common.timestamps)."""

import math
from datetime import datetime

from django.core.validators import MaxValueValidator, MinValueValidator
from rest_framework import serializers

from common.timestamps import parse_timestamp

INT32 = (-(2**31), 2**31 - 1)
ID = {"min_value": 1, "max_value": 2**63 - 1}  # a bigint primary key


def _finite(value):
    if not math.isfinite(value):
        raise serializers.ValidationError("A finite number is required.")


def bound(field):
    """Give an integer field (or a list's integer items) the column's bounds it lacks; floats finite."""
    if isinstance(field, serializers.ListField):
        bound(field.child)
    elif isinstance(field, serializers.IntegerField):
        if field.min_value is None:
            field.min_value = INT32[0]
            field.validators.append(MinValueValidator(INT32[0]))
        if field.max_value is None:
            field.max_value = INT32[1]
            field.validators.append(MaxValueValidator(INT32[1]))
    elif isinstance(field, serializers.FloatField) and _finite not in field.validators:
        field.validators.append(_finite)
    return field


class Input(serializers.Serializer):
    rejects_unknown_fields = True  # the schema says so (additionalProperties: false)

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            bound(field)
        return fields

    def to_internal_value(self, data):
        unknown = {str(k): ["Unknown field."] for k in data if k not in self.fields} if isinstance(data, dict) else {}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown})
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class TimestampField(serializers.DateTimeField):
    """A date-time read by common.timestamps: ISO 8601, naive meaning UTC, 1970..2100."""

    def to_internal_value(self, value):
        if isinstance(value, datetime):
            value = value.isoformat()
        try:
            return parse_timestamp(value, field=self.field_name or "value")
        except ValueError as exc:
            raise serializers.ValidationError(str(exc))
