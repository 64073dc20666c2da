from __future__ import annotations

from django.urls import path

from apps.strategylab import views

app_name = "lab-pages"

urlpatterns = [
    path("", views.experiment_list, name="list"),
    path("new", views.experiment_create, name="create"),
    path("experiments/<int:experiment_id>/", views.experiment_detail, name="experiment"),
    path("experiments/<int:experiment_id>/start", views.experiment_start, name="start"),
    path("experiments/<int:experiment_id>/cancel", views.experiment_cancel, name="cancel"),
    path("experiments/<int:experiment_id>/review", views.experiment_review, name="review"),
    path("candidates/<int:candidate_id>/graduate", views.candidate_graduate, name="graduate"),
]
