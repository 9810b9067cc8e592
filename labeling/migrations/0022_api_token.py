"""API tokens become django-rest-knox tokens in labeling.ApiToken; DRF's former tokens are carried over.

Each former token (its key was stored in clear in authtoken_token) becomes a service token with the
same key, stored hashed, never expiring but listed under its user and revocable, and ended by a
password change like any other; the clear keys are then deleted. Nothing happens on a fresh database.
"""

import datetime
import hashlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone
from knox.crypto import hash_token


LEGACY_TABLE = "authtoken_token"


def carry_over_drf_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {LEGACY_TABLE}")
        rows = cursor.fetchall()
    if not rows:
        return
    ApiToken = apps.get_model("labeling", "ApiToken")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    passwords = dict(User.objects.filter(pk__in={r[1] for r in rows}).values_list("pk", "password"))
    for key, user_id, created in rows:
        if timezone.is_naive(created):  # SQLite's cursor gives naive UTC
            created = timezone.make_aware(created, datetime.timezone.utc)
        stamp = hashlib.sha256((passwords[user_id] or "").encode()).hexdigest()  # labeling.models.password_stamp
        digest = hash_token(key)
        ApiToken.objects.bulk_create([ApiToken(
            digest=digest, token_key=key[:15], user_id=user_id, expiry=None, kind="service",
            name="API token from before tokens expired", password_stamp=stamp,
        )])
        ApiToken.objects.filter(digest=digest).update(created=created)  # auto_now_add set it to now
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {LEGACY_TABLE}")


class Migration(migrations.Migration):

    dependencies = [
        ('labeling', '0021_label_change_no_db_fk'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('token_key', models.CharField(db_index=True, max_length=25)),
                ('created', models.DateTimeField(auto_now_add=True)),
                ('expiry', models.DateTimeField(blank=True, null=True)),
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('digest', models.CharField(max_length=128, unique=True)),
                ('kind', models.CharField(choices=[('login', 'Login'), ('service', 'Service')], default='login', max_length=16)),
                ('name', models.CharField(blank=True, default='', max_length=100)),
                ('password_stamp', models.CharField(max_length=64)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='auth_token_set', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'abstract': False,
            },
        ),
        migrations.RunPython(carry_over_drf_tokens, migrations.RunPython.noop),
    ]
