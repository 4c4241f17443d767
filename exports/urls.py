"""Pages of the exports app, mounted at /exports/."""

from django.urls import path

from . import views

app_name = "exports"
urlpatterns = [
    path("", views.export_list, name="list"),
    path("new/", views.export_new, name="new"),
    path("<int:pk>/build/", views.export_build, name="build"),
    path("versions/<int:pk>/", views.version_detail, name="version"),
    path("versions/<int:pk>/progress/", views.version_progress, name="progress"),
    path("versions/<int:pk>/download/", views.version_download, name="download"),
    path("versions/<int:pk>/diff/", views.version_diff, name="diff"),
]
