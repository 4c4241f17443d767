"""Pages of the review app, mounted at /review/."""

from django.urls import path

from . import views
from .views import quality as quality_views

app_name = "review"
urlpatterns = [
    path("", views.queue_page, name="queue"),
    path("next/", views.next_image, name="next"),
    path("next/flagged/", quality_views.next_flagged_image, name="next_flagged"),
    path("image/<int:image_id>/", views.review_image, name="image"),
    path("image/<int:image_id>/panel/", views.image_panel, name="panel"),
    path("image/<int:image_id>/take/", views.take_image, name="take"),
    path("image/<int:image_id>/reopen/", views.reopen_image, name="reopen"),
    path("image/<int:image_id>/previous/", views.previous_image, name="previous"),
    path("image/<int:image_id>/add/", views.add_instruction, name="add_instruction"),
    path("item/<str:kind>/<int:item_id>/", views.item_partial, name="item"),
    path("item/<str:kind>/<int:item_id>/save/", views.save_item, name="save"),
    path("item/<str:kind>/<int:item_id>/history/", views.item_history, name="history"),
    path("item/<str:kind>/<int:item_id>/regenerate/", views.regenerate_item, name="regenerate"),
    path("validate/", views.validate, name="validate"),
    path("second/", views.second_pass_queue, name="second_pass"),
    path("second/<int:pass_id>/", views.second_pass_image, name="second_pass_image"),
    path("second/disagreements/", views.disagreements, name="disagreements"),
    path("stats/", views.stats_page, name="stats"),
    path("auto-accept/<slug:slug>/", quality_views.auto_accept_switch, name="auto_accept"),
]
