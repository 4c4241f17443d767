"""Pages of the exports app, mounted at /exports/."""

from django.urls import path  # noqa: F401

app_name = "exports"
urlpatterns: list = []
