from csp.decorators import csp_update
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from corpus import api as corpus_api
from corpus.views import media as corpus_media
from exports import api as exports_api
from generation import api as generation_api
from review import api as review_api
from review import quality_api as review_quality_api
from web.favicon import favicon


class APIDocsView(SpectacularSwaggerSplitView):
    """Swagger UI from drf-spectacular-sidecar's static files; its setup script is a separate request
    (no inline script) and the page has no inline style, so it passes the site's CSP."""

    template_name = "api_docs.html"


router = DefaultRouter()
for module in (corpus_api, generation_api, review_api, review_quality_api, exports_api):
    module.register(router)

urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("django-admin/", admin.site.urls),
    path("api/v1/", include(router.urls)),
    path("api/v1/", include(corpus_api)),
    path("api/v1/", include(generation_api)),
    path("api/v1/", include(review_api)),
    path("api/v1/", include(exports_api)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI draws its icons as data: images.
    path(
        "api/docs/",
        csp_update({"img-src": ["data:"]})(APIDocsView.as_view(url_name="schema")),
        name="api-docs",
    ),
    path("generation/", include("generation.urls")),
    path("review/", include("review.urls")),
    path("exports/", include("exports.urls")),
    # Images and thumbnails, in every mode, behind the role check: the view streams them, or hands them to
    # nginx's internal location (MEDIA_ACCEL_REDIRECT). There is no other URL for a stored file.
    path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", corpus_media.media_file, name="media"),
    path("", include("studio.urls")),
    path("", include("corpus.urls")),
]

# Styled error pages inside the site layout; JSON on /api/ paths (web.error_pages).
handler400 = "web.error_pages.bad_request"
handler403 = "web.error_pages.permission_denied"
handler404 = "web.error_pages.page_not_found"
handler500 = "web.error_pages.server_error"
