"""Pages of the generation app, mounted at /generation/."""

from django.urls import path

from .views import costs, endpoints, jobs, prompts

app_name = "generation"
urlpatterns = [
    path("", jobs.job_list, name="jobs"),
    path("jobs/<int:pk>/", jobs.job_detail, name="job"),
    path("jobs/<int:pk>/progress/", jobs.job_progress, name="job-progress"),
    path("jobs/<int:pk>/<str:action>/", jobs.job_control, name="job-control"),
    path("endpoints/", endpoints.endpoint_list, name="endpoints"),
    path("endpoints/<int:pk>/default/", endpoints.endpoint_make_default, name="endpoint-default"),
    path("endpoints/<int:pk>/test/", endpoints.endpoint_test, name="endpoint-test"),
    path("prompts/", prompts.prompt_list, name="prompts"),
    path("prompts/new/", prompts.prompt_edit, name="prompt-new"),
    path("prompts/<int:pk>/edit/", prompts.prompt_edit, name="prompt-edit"),
    path("costs/", costs.costs, name="costs"),
]
