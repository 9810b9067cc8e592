from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from labeling.api.errors import api_not_found


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
    path("api/schema", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("labeling.api.urls")),
    path("api/", include("bugqueue.api.urls")),
    path("api/<path:rest>", api_not_found),
    path("", include("labeling.urls")),
    path("", include("bugqueue.urls")),
]
