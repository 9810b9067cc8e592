from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path, re_path

from common.api import errors as api_errors
from common.api.views_schema import DocsApi, SchemaApi


def favicon(request):
    """Browsers ask for /favicon.ico on pages that name no icon (the admin's): Loupe's icon, not a 404.
    Resolved per request (the static manifest need not exist when migrate imports the URLconf), and
    not permanent: the hashed file name changes with the icon."""
    return redirect(static("loupe/favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(template_name="registration/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema", SchemaApi.as_view(), name="api-schema"),
    path("api/docs", DocsApi.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("labeling.api.urls")),
    path("api/", include("bugqueue.api.urls")),
    path("api/", include("alerts.api.urls")),
    # Any other path under /api/ (newlines included, which <path:> does not match) is a JSON 404.
    re_path(r"^api/(?P<rest>[\s\S]*)\Z", api_errors.api_not_found),
    path("", include("labeling.urls")),
    path("", include("bugqueue.urls")),
    path("", include("alerts.urls")),
]

# Errors Django answers itself: the error shape under /api/, Django's pages (templates) elsewhere.
handler400 = api_errors.handler400
handler403 = api_errors.handler403
handler404 = api_errors.handler404
handler500 = api_errors.handler500
