from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core.exceptions import ApplicationError
from apps.runners.models import Job
from apps.runners.services import jobs as job_services


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Read-only: a job's lifecycle moves only through the ledger's services (claim, watchdog,
    cancel, retry), so the admin offers cancel and retry as actions, never a status field."""

    list_display = (
        "id",
        "type",
        "status",
        "attempts",
        "max_attempts",
        "runner",
        "leased_by",
        "lease_expires_at",
        "available_at",
        "created_at",
        "trace_id",
    )
    list_filter = ("status", "type")
    search_fields = ("=id", "idempotency_key", "trace_id", "leased_by")
    readonly_fields = [f.name for f in Job._meta.fields]
    list_select_related = ("runner__bot",)
    date_hierarchy = "created_at"
    show_full_result_count = False  # the ledger grows by one row per runner per bar
    actions = ["cancel_jobs", "retry_jobs"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _each(self, request: HttpRequest, queryset: QuerySet[Job], action: Any, verb: str) -> None:
        done = 0
        for job in queryset:
            try:
                action(job)
                done += 1
            except ApplicationError as error:
                self.message_user(request, f"Job {job.pk}: {error.message}", level=messages.WARNING)
        if done:
            self.message_user(request, f"{verb} {done} job(s).", level=messages.SUCCESS)

    @admin.action(description="Cancel the selected jobs (QUEUED or FAILED)")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        def cancel(job: Job) -> Job:
            return job_services.job_cancel(job=job, actor=request.user, reason="cancelled in the admin")

        self._each(request, queryset, cancel, "Cancelled")

    @admin.action(description="Retry the selected jobs (DEAD, FAILED or CANCELLED)")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, lambda job: job_services.job_retry(job=job, actor=request.user), "Requeued")
