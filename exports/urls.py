"""Pages of the exports app, mounted at /exports/."""

from django.urls import path

from .views import specs, versions

app_name = "exports"
urlpatterns = [
    path("", specs.export_list, name="list"),
    path("new/", specs.export_new, name="new"),
    path("<int:pk>/build/", specs.export_build, name="build"),
    path("versions/<int:pk>/", versions.version_detail, name="version"),
    path("versions/<int:pk>/progress/", versions.version_progress, name="progress"),
    path("versions/<int:pk>/download/", versions.version_download, name="download"),
    path("versions/<int:pk>/diff/", versions.version_diff, name="diff"),
]
