"""Orders, fills, positions and the risk state they are checked against.

Every order intent is a row before anything is sent (SPEC §6): its `client_order_id` is derived
from the intent (bot, bar, leg), so re-running the same tick finds the row instead of sending a
second order. Bots live in a higher app: rows name them by plain id (they outlive a bot)."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING_SUBMIT = "PENDING_SUBMIT", "Persisted, not yet sent"
        WORKING = "WORKING", "Working at the venue"
        PARTIALLY_FILLED = "PARTIALLY_FILLED", "Partially filled"
        FILLED = "FILLED", "Filled"
        CANCELLED = "CANCELLED", "Cancelled"
        REJECTED = "REJECTED", "Rejected by the venue"
        REJECTED_RISK = "REJECTED_RISK", "Rejected by the risk engine (never sent)"
        UNKNOWN = "UNKNOWN", "Unknown: reconcile settles it"
        HELD = "HELD", "Held by the venue with its entry: works once the entry fills"

    # HELD: a protective stop sent with its entry as one bracket (Tradovate OSO). It is open: it will
    # work, it can be cancelled, and the worst case counts it; but it is not working until the entry
    # has filled, so no rule about working stops applies to it until reconcile says it works.
    OPEN_STATUSES = (Status.PENDING_SUBMIT, Status.WORKING, Status.PARTIALLY_FILLED, Status.UNKNOWN, Status.HELD)

    class Side(models.TextChoices):
        BUY = "BUY", "Buy"
        SELL = "SELL", "Sell"

    class Type(models.TextChoices):
        MARKET = "MARKET", "Market"
        LIMIT = "LIMIT", "Limit"
        STOP = "STOP", "Stop"

    client_order_id = models.CharField(max_length=40, unique=True)
    bot_id = models.BigIntegerField()
    generation = models.PositiveIntegerField(help_text="The runner generation that placed it.")
    mode = models.CharField(max_length=4, help_text="SIM or LIVE.")
    venue = models.CharField(max_length=20)
    account = models.CharField(max_length=100, blank=True)
    instrument = models.CharField(max_length=20, help_text="Root symbol, e.g. MES.")
    contract = models.CharField(max_length=40, blank=True, help_text="The venue's symbol, e.g. MESZ6.")
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = models.PositiveIntegerField()
    order_type = models.CharField(max_length=6, choices=Type.choices, default=Type.MARKET)
    limit_price = models.DecimalField(max_digits=18, decimal_places=9, null=True, blank=True)
    stop_price = models.DecimalField(max_digits=18, decimal_places=9, null=True, blank=True)
    reduce_only = models.BooleanField(default=False)
    protective_stop = models.DecimalField(
        max_digits=18,
        decimal_places=9,
        null=True,
        blank=True,
        help_text="For an entry: the stop its decision wants on the position it opens (placed once it fills).",
    )
    bracket_entry = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bracket_stops",
        help_text="For a protective stop sent with its entry as one bracket (Tradovate OSO): that entry.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING_SUBMIT)
    venue_order_id = models.CharField(max_length=64, blank=True)
    filled_quantity = models.PositiveIntegerField(default=0)
    avg_fill_price = models.DecimalField(max_digits=18, decimal_places=9, null=True, blank=True)
    reference_price = models.DecimalField(
        max_digits=18, decimal_places=9, null=True, blank=True, help_text="The price risk checked against."
    )
    bar_ts = models.DateTimeField(help_text="The close of the bar whose decision placed it.")
    reason_code = models.CharField(max_length=60, blank=True)
    detail = models.TextField(blank=True)
    trace_id = models.CharField(max_length=64)
    placed_at = models.DateTimeField(
        help_text="When the tick placed it, on the tick's clock (a replay's is the replayed time): risk windows use it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # RELIABILITY J3: how often reconcile asked the broker for this order (no broker id yet) and the
    # broker did not have it. Only lookups spaced apart count; see apps/trading/reconcile.py.
    broker_misses = models.PositiveSmallIntegerField(
        default=0, help_text="Reconcile lookups (spaced apart) that did not find it at the broker."
    )
    last_broker_miss_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(filled_quantity__lte=models.F("quantity")), name="order_fill_within_quantity"
            ),
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="order_quantity_positive"),
        ]
        indexes = [
            models.Index(fields=["bot_id", "-created_at"], name="order_bot_created"),
            models.Index(fields=["bot_id", "placed_at"], name="order_bot_placed"),
            # Working orders per bot and per account: the position limit counts them (R4, R5).
            models.Index(
                fields=["bot_id", "instrument"],
                condition=models.Q(status__in=["PENDING_SUBMIT", "WORKING", "PARTIALLY_FILLED", "UNKNOWN", "HELD"]),
                name="order_open_by_bot",
            ),
            models.Index(fields=["status"], name="order_status"),
        ]

    def __str__(self) -> str:
        return f"{self.client_order_id} {self.side} {self.quantity} {self.instrument} {self.status}"

    @property
    def open_quantity(self) -> int:
        return self.quantity - self.filled_quantity if self.status in self.OPEN_STATUSES else 0


class Fill(models.Model):
    """One execution. `venue_fill_id` is the venue's id (the SIM ledger makes one per bar), so a
    fill seen twice (a reconcile after a crash) is applied once."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    bot_id = models.BigIntegerField()
    instrument = models.CharField(max_length=20)
    venue_fill_id = models.CharField(max_length=64)
    side = models.CharField(max_length=4, choices=Order.Side.choices)
    quantity = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=18, decimal_places=9)
    fee = models.DecimalField(max_digits=18, decimal_places=9)
    slippage = models.DecimalField(
        max_digits=18, decimal_places=9, help_text="Cost against the reference price, in currency (≥ 0 is a cost)."
    )
    realized_pnl = models.DecimalField(
        max_digits=18, decimal_places=9, default=0, help_text="PnL this fill realized (USD, before its fee)."
    )
    filled_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-filled_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["order", "venue_fill_id"], name="fill_unique_per_order")]
        indexes = [models.Index(fields=["bot_id", "-filled_at"], name="fill_bot_filled")]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.instrument} @ {self.price}"


class Position(models.Model):
    """A bot's net position in one instrument, kept from its fills (signed: long > 0)."""

    bot_id = models.BigIntegerField()
    account = models.CharField(max_length=100, blank=True)
    venue = models.CharField(max_length=20)
    instrument = models.CharField(max_length=20)
    quantity = models.IntegerField(default=0)
    avg_price = models.DecimalField(max_digits=18, decimal_places=9, null=True, blank=True)
    realized_pnl = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    fees = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["bot_id", "instrument"]
        constraints = [models.UniqueConstraint(fields=["bot_id", "instrument"], name="position_unique_bot_instrument")]
        indexes = [models.Index(fields=["venue", "account"], name="position_account")]

    def __str__(self) -> str:
        return f"bot {self.bot_id} {self.instrument} {self.quantity:+d}"


class TradingState(models.Model):
    """A bot's risk state (RELIABILITY R6, R8, R10, R11): ACTIVE trades; REDUCING only reduces;
    HALTED denies everything but cancels. Set by the risk engine and the supervisor, each change
    audited; only a person returns a bot to ACTIVE."""

    class State(models.TextChoices):
        ACTIVE = "ACTIVE", "Active"
        REDUCING = "REDUCING", "Reducing only"
        HALTED = "HALTED", "Halted"

    bot_id = models.BigIntegerField(unique=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.ACTIVE)
    reason_code = models.CharField(max_length=60, blank=True)
    reason = models.TextField(blank=True)
    changed_by = models.CharField(max_length=150, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"bot {self.bot_id} {self.state}"


class AccountRisk(models.Model):
    """One row per (venue, account): the aggregate limit across every bot trading it (R5). The
    check and the reservation of an order run under SELECT … FOR UPDATE on this row, so
    concurrent submits from different bots are serialised and can never pass the cap together."""

    venue = models.CharField(max_length=20)
    account = models.CharField(max_length=100, blank=True)
    max_contracts = models.PositiveIntegerField(
        null=True, blank=True, help_text="Gross open contracts across bots (positions + working orders)."
    )
    max_notional = models.DecimalField(
        max_digits=18,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Gross notional in USD across bots (worst case if every working order fills, at current "
        "prices × point value). Empty: no notional cap (the contracts cap still applies).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["venue", "account"], name="account_risk_unique"),
            models.CheckConstraint(
                condition=models.Q(max_notional__isnull=True) | models.Q(max_notional__gt=0),
                name="account_risk_notional_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.venue}:{self.account or '-'} max {self.max_contracts}"


class RestrictedInstrument(models.Model):
    """An instrument no bot may open or add to (RELIABILITY R13): everywhere (venue and account
    empty), on one venue, or on one account. Orders that strictly reduce a position still pass."""

    instrument = models.CharField(max_length=20, help_text="Root symbol, e.g. MES.")
    venue = models.CharField(max_length=20, blank=True, help_text="Empty: every venue.")
    account = models.CharField(max_length=100, blank=True, help_text="Empty: every account (of the venue).")
    reason = models.CharField(max_length=300, help_text="Shown in every rejection (RISK_RESTRICTED).")
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["instrument", "venue", "account"]
        constraints = [
            models.UniqueConstraint(fields=["instrument", "venue", "account"], name="restricted_instrument_unique"),
            models.CheckConstraint(
                condition=~models.Q(instrument="") & ~models.Q(reason=""), name="restricted_instrument_named"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instrument} restricted ({self.venue or 'all venues'}:{self.account or 'all accounts'})"


class ReconcileReport(models.Model):
    """One reconcile of a bot's orders and position against its venue, kept as an artifact: what
    matched, what it fixed (missed fills applied, orders the venue never had), what is still in
    flight (an order sent moments ago that the broker does not list yet), and what it could not
    settle (a position that differs, an order the venue cannot identify, an unknown external
    order), which halts the bot."""

    class Status(models.TextChoices):
        MATCHED = "MATCHED", "Everything matched"
        FIXED = "FIXED", "Differences found and settled"
        MISMATCH = "MISMATCH", "Differences it could not settle (bot halted)"
        FAILED = "FAILED", "The venue could not be read (a running LIVE bot is halted)"
        PENDING = "PENDING", "Orders still in flight: not at the broker yet; the next reconcile looks again"

    bot_id = models.BigIntegerField()
    venue = models.CharField(max_length=20)
    account = models.CharField(max_length=100, blank=True)
    trigger = models.CharField(max_length=20, help_text="manual, start or schedule.")
    status = models.CharField(max_length=8, choices=Status.choices)
    report = models.JSONField(default=dict)
    actor_label = models.CharField(max_length=150, blank=True)
    trace_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["bot_id", "-created_at"], name="reconcile_bot_created")]

    def __str__(self) -> str:
        return f"reconcile bot {self.bot_id} {self.status}"


class KillSwitch(models.Model):
    """The global kill latch (RELIABILITY K1, K2): one row (pk 1). While `engaged`, the risk engine
    refuses every new order of every bot (a reducing flatten excepted, as for a bot's own latch),
    the send path refuses to send, and no runner may start. Set by kill-all, cleared only by a
    person with a reason; both audited. It lives here, in trading, because the risk engine and the
    send path must read it; higher apps (runners, bots) read and move it through
    apps/trading/kill_switch.py, and the status selector reads it by label."""

    SINGLETON = 1

    engaged = models.BooleanField(default=False)
    engaged_at = models.DateTimeField(null=True, blank=True)
    engaged_by = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.CharField(max_length=150, blank=True)
    release_reason = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="kill_switch_singleton")]

    def __str__(self) -> str:
        return f"kill-all {'ENGAGED' if self.engaged else 'released'}"
