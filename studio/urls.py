from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("images/bulk/", views.image_bulk, name="image-bulk"),
]
