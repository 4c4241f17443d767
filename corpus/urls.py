from django.urls import path

from .views import browse, datasets, imports

urlpatterns = [
    path("domains/", browse.domain_list, name="domain-list"),
    path("domains/<slug:slug>/", browse.domain_detail, name="domain-detail"),
    path("domains/<slug:slug>/edit/", browse.domain_edit, name="domain-edit"),
    path("images/", browse.image_list, name="image-list"),
    path("images/import/", imports.image_import, name="image-import"),
    path("images/import/<int:pk>/", imports.import_batch_detail, name="image-import-batch"),
    path("images/<int:pk>/", browse.image_detail, name="image-detail"),
    path("datasets/import/", datasets.dataset_import, name="dataset-import"),
    path("datasets/import/<int:pk>/", datasets.dataset_import_detail, name="dataset-import-detail"),
]
