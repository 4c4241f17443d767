"""Pages of the review app, mounted at /review/."""

from django.urls import path  # noqa: F401

app_name = "review"
urlpatterns: list = []
