"""Pages of the generation app, mounted at /generation/."""

from django.urls import path  # noqa: F401

app_name = "generation"
urlpatterns: list = []
