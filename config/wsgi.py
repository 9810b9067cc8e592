import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
# Import every view (and what they import: scikit-learn, cleanlab, pandas) when the worker starts,
# not inside its first request, which would otherwise take seconds.
_ = get_resolver().url_patterns

from config.celery import warm_broker  # noqa: E402

warm_broker()
