"""The strategy lab (SPEC §10): an experiment searches a parameter space on in-sample bars, re-runs
its best sets out of sample, and ranks candidates by what they did on bars they were not tuned on.

Every run of an experiment is a Backtest (apps.backtests) linked through ExperimentRun, so progress
and failures are counted from the backtests themselves. Rows change only through
apps/strategylab/services.py. Bots are a lower app than the lab but are still named by label
here, like every cross-app model reference."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ExperimentStatus(models.TextChoices):
    DRAFT = "DRAFT", "Draft"
    RUNNING = "RUNNING", "Running"
    SUCCEEDED = "SUCCEEDED", "Succeeded"
    FAILED = "FAILED", "Failed"
    CANCELLED = "CANCELLED", "Cancelled"


class Experiment(models.Model):
    Status = ExperimentStatus

    class Phase(models.TextChoices):
        DRAFT = "DRAFT", "Not started"
        IN_SAMPLE = "IN_SAMPLE", "In-sample search"
        OUT_OF_SAMPLE = "OUT_OF_SAMPLE", "Out-of-sample re-runs"
        DONE = "DONE", "Done"

    name = models.CharField(max_length=200)
    strategy_key = models.CharField(max_length=60)
    instruments = models.JSONField(default=list)
    timeframe = models.CharField(max_length=10)
    parameter_space = models.JSONField(default=dict, help_text="As given: {name: [values]} or {name: {min,max,step}}.")
    grid = models.JSONField(default=dict, help_text="The expanded space: {name: [values]}.")
    # Every parameter set the strategy's rules allow, complete (defaults filled in); runs name them by index.
    combinations = models.JSONField(default=list)
    skipped = models.JSONField(default=dict, blank=True, help_text="Combinations a strategy rule refused.")
    # {"train": {start, end}, "test": {start, end}} or {"walk_forward": {...}}, as given (normalised).
    windows = models.JSONField(default=dict)
    # [{"train": {start, end}, "test": {start, end}}, ...]: one fold for a train/test split.
    folds = models.JSONField(default=list)
    objective = models.CharField(max_length=40, default="expectancy")
    max_runs = models.PositiveIntegerField()
    top_k = models.PositiveIntegerField()
    fill_model = models.JSONField(default=dict)
    risk_limits = models.JSONField(default=dict, blank=True)
    initial_capital = models.DecimalField(max_digits=18, decimal_places=2)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    phase = models.CharField(max_length=14, choices=Phase.choices, default=Phase.DRAFT)
    progress = models.FloatField(default=0.0)
    error = models.JSONField(null=True, blank=True, help_text="The error envelope, when FAILED.")
    # Runs that failed, named: [{"backtest_id", "phase", "fold", "parameters", "instrument", "error"}].
    failures = models.JSONField(default=list, blank=True)
    # The deflated Sharpe ratio of the winner and the PBO, each with its inputs (or null + reason).
    luck = models.JSONField(default=dict, blank=True)
    review_text = models.TextField(blank=True)
    review_provider = models.CharField(max_length=40, blank=True)
    review_model = models.CharField(max_length=100, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status"], name="experiment_status")]

    def __str__(self) -> str:
        return f"experiment {self.pk} {self.name} ({self.status})"


class ExperimentRun(models.Model):
    """One backtest of an experiment: which phase, fold, parameter set (index into
    Experiment.combinations) and instrument it ran."""

    class Phase(models.TextChoices):
        IN_SAMPLE = "IN_SAMPLE", "In sample"
        OUT_OF_SAMPLE = "OUT_OF_SAMPLE", "Out of sample"

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="runs")
    backtest = models.OneToOneField("backtests.Backtest", on_delete=models.CASCADE, related_name="lab_run")
    phase = models.CharField(max_length=14, choices=Phase.choices)
    fold = models.PositiveIntegerField()
    combo = models.PositiveIntegerField()
    instrument = models.CharField(max_length=20)

    class Meta:
        ordering = ["experiment", "phase", "combo", "instrument", "fold"]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "phase", "fold", "combo", "instrument"], name="experiment_run_unique"
            )
        ]

    def __str__(self) -> str:
        return f"experiment {self.experiment_id} {self.phase} fold {self.fold} set {self.combo} {self.instrument}"


class Candidate(models.Model):
    """A parameter set on one instrument that was re-run out of sample, ranked by its out-of-sample
    objective. `in_sample` / `out_of_sample`: {"objective", "runs": [{backtest_id, start, end,
    status, verdict, metrics}]}."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="candidates")
    combo = models.PositiveIntegerField()
    parameters = models.JSONField(default=dict)
    instrument = models.CharField(max_length=20)
    rank = models.PositiveIntegerField(null=True, blank=True, help_text="1 = best out of sample; null: unranked.")
    in_sample_rank = models.PositiveIntegerField()
    in_sample_objective = models.DecimalField(max_digits=38, decimal_places=10, null=True, blank=True)
    out_of_sample_objective = models.DecimalField(max_digits=38, decimal_places=10, null=True, blank=True)
    in_sample = models.JSONField(default=dict)
    out_of_sample = models.JSONField(default=dict)
    verdict = models.CharField(max_length=12, blank=True, help_text="The out-of-sample classification.")
    unranked_reason = models.TextField(blank=True)
    overfit_warnings = models.JSONField(default=list, blank=True)
    bot = models.ForeignKey("bots.Bot", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    bot_config_version = models.PositiveIntegerField(null=True, blank=True)
    # The bot's own backtests over the out-of-sample window(s), started at graduation: the gate's evidence.
    graduation_backtests = models.JSONField(default=list, blank=True)
    graduated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["experiment", models.F("rank").asc(nulls_last=True), "in_sample_rank"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "combo", "instrument"], name="candidate_unique"),
        ]

    def __str__(self) -> str:
        return f"candidate {self.pk} of experiment {self.experiment_id} (rank {self.rank})"
