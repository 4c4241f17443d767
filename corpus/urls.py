from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("domains/", views.domain_list, name="domain-list"),
    path("domains/<slug:slug>/", views.domain_detail, name="domain-detail"),
    path("domains/<slug:slug>/edit/", views.domain_edit, name="domain-edit"),
    path("images/", views.image_list, name="image-list"),
    path("images/import/", views.image_import, name="image-import"),
    path("images/import/<int:pk>/", views.import_batch_detail, name="image-import-batch"),
    path("images/<int:pk>/", views.image_detail, name="image-detail"),
]
