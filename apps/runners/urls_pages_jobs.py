from __future__ import annotations

from django.urls import path

from apps.runners import views

app_name = "job-pages"

urlpatterns = [
    path("", views.job_list, name="list"),
    path("<int:job_id>/retry", views.job_retry, name="retry"),
    path("<int:job_id>/cancel", views.job_cancel, name="cancel"),
]
