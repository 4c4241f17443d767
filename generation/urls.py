"""Pages of the generation app, mounted at /generation/."""

from django.urls import path

from . import views

app_name = "generation"
urlpatterns = [
    path("", views.job_list, name="jobs"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("jobs/<int:pk>/progress/", views.job_progress, name="job-progress"),
    path("jobs/<int:pk>/<str:action>/", views.job_control, name="job-control"),
    path("endpoints/", views.endpoint_list, name="endpoints"),
    path("endpoints/<int:pk>/default/", views.endpoint_make_default, name="endpoint-default"),
    path("endpoints/<int:pk>/test/", views.endpoint_test, name="endpoint-test"),
    path("prompts/", views.prompt_list, name="prompts"),
    path("prompts/new/", views.prompt_edit, name="prompt-new"),
    path("prompts/<int:pk>/edit/", views.prompt_edit, name="prompt-edit"),
    path("costs/", views.costs, name="costs"),
]
