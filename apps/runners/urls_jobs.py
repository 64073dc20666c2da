from __future__ import annotations

from django.urls import path

from apps.runners import apis_jobs

app_name = "jobs"

urlpatterns = [
    path("", apis_jobs.JobListApi.as_view(), name="list"),
    path("<int:job_id>", apis_jobs.JobDetailApi.as_view(), name="detail"),
    path("<int:job_id>/cancel", apis_jobs.JobCancelApi.as_view(), name="cancel"),
    path("<int:job_id>/retry", apis_jobs.JobRetryApi.as_view(), name="retry"),
]
