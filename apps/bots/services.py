"""Writes to bots: create and edit (with versioned config), the starter pack, stage changes
through the gate table, and the kill latch. Every mutation is audited with before/after; every
refused lifecycle action is audited too, outside the refused transaction so the record survives.

Lifecycle fields (stage, autonomy_tier, killed*) change only here, each through one conditional
UPDATE (R4). Stopping runners on a kill is orchestrated by apps.runners, which calls the latch."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from django.apps import apps
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.bots import selectors
from apps.bots.exceptions import (
    BotChangedConcurrently,
    BotChangeRefused,
    BotValidationError,
    InvalidStageTransition,
    LifecyclePermissionDenied,
    PromotionGateFailed,
    UnkillRefused,
)
from apps.bots.models import Bot, BotConfigVersion
from apps.core import snapshots
from apps.core.audit import audit_record
from apps.core.exceptions import ApplicationError
from apps.core.roles import Role, user_has_role
from apps.trading import catalogue as strategies

Stage = Bot.Stage

# What a client may set. Everything else on Bot is lifecycle state or bookkeeping.
EDITABLE_FIELDS = (
    "name",
    "strategy_key",
    "parameters",
    "instrument",
    "timeframe",
    "data_provider",
    "venue",
    "broker_account",
    "risk_limits",
)
LIFECYCLE_FIELDS = ("stage", "autonomy_tier", "killed", "killed_at", "kill_reason", "killed_by", "config_version")
# What a LIVE bot trades, how and where: changing any of it is a different bot, which must earn
# LIVE again. Parameters and risk limits stay editable (versioned) so a desk can tighten them.
LIVE_LOCKED_FIELDS = ("strategy_key", "instrument", "timeframe", "data_provider", "venue", "broker_account")
# The columns the promotion gates read; the stage changes only if none of them moved meanwhile.
GATE_INPUT_FIELDS = ("stage", "config_version", "killed", "strategy_key", "venue", "broker_account")


def _label(actor: Any, actor_label: str = "") -> str:
    if actor_label:
        return actor_label
    return actor.get_username() if getattr(actor, "is_authenticated", False) else "system"


def _invalidate_status() -> None:
    # bots.byStage / byAutonomyTier are part of GET /api/system/status.
    transaction.on_commit(lambda: snapshots.invalidate("system-status"))


def _snapshot(bot: Bot, names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    out = {}
    for name in names:
        value = getattr(bot, name)
        out[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


def _has_role(actor: Any, role: Role) -> bool:
    """actor is a signed-in user holding role (a system actor, None or a label, holds none)."""
    return bool(getattr(actor, "is_authenticated", False)) and user_has_role(actor, role)


def _refuse(
    *, action: str, bot: Bot, actor: Any, actor_label: str = "", reason: str, error: ApplicationError
) -> NoReturn:
    """Audit a refused lifecycle action (who tried what, and why not), then raise. Called outside
    any transaction of the action itself, so the refusal's record is not rolled back with it."""
    audit_record(
        action=f"bot.{action}_refused",
        actor=actor,
        actor_label=_label(actor, actor_label),
        target=bot,
        reason=reason,
        after={"error_code": error.error_code, "message": error.message, **error.extra},
    )
    raise error


# --- validation --------------------------------------------------------------------------------


def bot_field_refusals(values: Iterable[str], *, creating: bool) -> dict[str, list[str]]:
    """Errors for the names a client may not set: lifecycle state, or not a bot field at all.
    (Silently dropping them would let `{"stage": "LIVE"}` answer 200 having done nothing.)"""
    errors: dict[str, list[str]] = {}
    for name in values:
        if name in LIFECYCLE_FIELDS:
            errors[name] = [
                "cannot be set on a new bot: bots start at LAB, LOCKED, not killed."
                if creating
                else "is not editable: change the stage with promote/demote, the kill latch with kill/unkill; "
                "the autonomy tier and config version are derived."
            ]
        elif name not in EDITABLE_FIELDS:
            errors[name] = ["is not a bot field."]
    return errors


def _validate(values: dict[str, Any], *, bot_id: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(cleaned values, errors by field) for a complete set of editable fields. Every bad field is
    named at once, so a client fixes them in one round."""
    errors: dict[str, Any] = {}
    clean = dict(values)

    name = values.get("name")
    if not isinstance(name, str) or not name.strip():
        errors["name"] = ["is required."]
    else:
        clean["name"] = name.strip()
        if len(clean["name"]) > Bot._meta.get_field("name").max_length:
            errors["name"] = ["must be at most 100 characters."]
        elif Bot.objects.filter(name__iexact=clean["name"]).exclude(pk=bot_id).exists():
            errors["name"] = [f"a bot named {clean['name']!r} already exists."]

    strategy = strategies.strategy_for(values.get("strategy_key"))
    if strategy is None:
        errors["strategy_key"] = [f"must be one of: {', '.join(strategies.STRATEGIES)}."]
    parameters = values.get("parameters")
    if not isinstance(parameters, dict):
        errors["parameters"] = ["must be an object of parameter names to numbers."]
    elif strategy is not None:
        clean["parameters"], parameter_errors = strategies.parameter_errors(strategy, parameters)
        if parameter_errors:
            errors["parameters"] = parameter_errors

    instrument = values.get("instrument")
    clean["instrument"] = instrument.strip().upper() if isinstance(instrument, str) else instrument
    if not isinstance(instrument, str) or clean["instrument"] not in strategies.INSTRUMENTS:
        errors["instrument"] = [f"must be one of: {', '.join(strategies.INSTRUMENTS)}."]
    if values.get("timeframe") not in strategies.TIMEFRAMES:
        errors["timeframe"] = [f"must be one of: {', '.join(strategies.TIMEFRAMES)}."]
    if values.get("data_provider") not in Bot.DataProvider.values:
        errors["data_provider"] = [f"must be one of: {', '.join(Bot.DataProvider.values)}."]

    venue, account = values.get("venue"), values.get("broker_account")
    if venue not in Bot.Venue.values:
        errors["venue"] = [f"must be one of: {', '.join(Bot.Venue.values)}."]
    if not isinstance(account, str):
        errors["broker_account"] = ["must be a string."]
    else:
        clean["broker_account"] = account.strip()
        if len(clean["broker_account"]) > Bot._meta.get_field("broker_account").max_length:
            errors["broker_account"] = ["must be at most 100 characters."]
        elif venue == Bot.Venue.SIM and clean["broker_account"]:
            errors["broker_account"] = ["must be empty for the sim venue (the simulated ledger has no account)."]
        elif venue in Bot.Venue.values and venue != Bot.Venue.SIM and not clean["broker_account"]:
            errors["broker_account"] = [f"is required for the {venue} venue: orders go to this account."]

    risk_limits = values.get("risk_limits")
    if not isinstance(risk_limits, dict):
        errors["risk_limits"] = ["must be an object of limit names to positive numbers."]
    else:
        clean["risk_limits"], limit_errors = strategies.risk_limit_errors(risk_limits)
        if limit_errors:
            errors["risk_limits"] = limit_errors
    return clean, errors


def _merge(current: dict[str, Any], patch: Any, *, null_means: dict[str, Any] | None) -> Any:
    """JSON merge-patch of a flat object: keys in patch replace; a null resets the key to its
    default (null_means) or removes it. A non-object patch is returned as is, for validation."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(current)
    for key, value in patch.items():
        if value is not None:
            merged[key] = value
        elif null_means is not None and key in null_means:
            merged[key] = null_means[key]
        else:
            merged.pop(key, None)
    return merged


def _record_version(*, bot: Bot, actor: Any, reason: str) -> BotConfigVersion:
    return BotConfigVersion.objects.create(
        bot=bot,
        version=bot.config_version,
        parameters=bot.parameters,
        risk_limits=bot.risk_limits,
        changed_by=_label(actor),
        reason=reason,
    )


# --- create and edit ---------------------------------------------------------------------------


@transaction.atomic
def bot_create(*, actor: Any, reason: str = "", **fields: Any) -> Bot:
    """A new bot at LAB, LOCKED, config version 1 (recorded). Parameters not given take the
    strategy's defaults, so the stored set is complete."""
    errors: dict[str, Any] = bot_field_refusals(fields, creating=True)
    strategy = strategies.strategy_for(fields.get("strategy_key"))
    values = {
        "parameters": {},
        "timeframe": Bot._meta.get_field("timeframe").default,
        "data_provider": Bot.DataProvider.DATABENTO,
        "venue": Bot.Venue.SIM,
        "broker_account": "",
        "risk_limits": {},
        **{k: v for k, v in fields.items() if k in EDITABLE_FIELDS},
    }
    if strategy is not None:
        values["parameters"] = _merge(strategy.defaults(), values["parameters"], null_means=strategy.defaults())
    clean, field_errors = _validate(values, bot_id=None)
    errors.update(field_errors)
    if errors:
        raise BotValidationError(errors, "The bot is not valid.")
    try:
        with transaction.atomic():
            bot = Bot.objects.create(**clean, stage=Stage.LAB, autonomy_tier=Bot.Tier.LOCKED, config_version=1)
    except IntegrityError:
        # Another request created the same name between the check and the insert.
        raise BotValidationError({"name": [f"a bot named {clean['name']!r} already exists."]}) from None
    _record_version(bot=bot, actor=actor, reason=reason or "created")
    audit_record(
        action="bot.create",
        actor=actor,
        target=bot,
        reason=reason,
        after=_snapshot(bot, [*EDITABLE_FIELDS, "stage", "autonomy_tier", "config_version"]),
    )
    _invalidate_status()
    return bot


def bot_update(*, bot: Bot, actor: Any, reason: str = "", **changes: Any) -> Bot:
    """Edit editable fields (a PATCH: only what is given changes). `parameters` and `risk_limits`
    are merge-patched: a key set to null goes back to the strategy default / is removed. Any
    change of either bumps config_version and records the new version. A bot whose
    strategy_key changes starts from the new strategy's defaults.

    The row is locked for the read-merge-write, so two concurrent edits both land, in turn, and
    the version numbers stay gapless."""
    errors = bot_field_refusals(changes, creating=False)
    if errors:
        raise BotValidationError(errors, "Some fields cannot be changed this way.")
    with transaction.atomic():
        locked = Bot.objects.select_for_update().get(pk=bot.pk)
        updated = _apply_update(locked=locked, actor=actor, reason=reason, changes=changes)
    for f in updated._meta.concrete_fields:
        setattr(bot, f.attname, getattr(updated, f.attname))
    return bot


def _apply_update(*, locked: Bot, actor: Any, reason: str, changes: dict[str, Any]) -> Bot:
    if locked.stage == Stage.RETIRED:
        raise BotChangeRefused(
            f"Bot {locked.name} is RETIRED; a retired bot is kept as it was.",
            suggested_fix="Create a new bot (POST /api/bots/) instead.",
        )
    current = {name: getattr(locked, name) for name in EDITABLE_FIELDS}
    values = {**current, **{k: v for k, v in changes.items() if k not in ("parameters", "risk_limits")}}
    strategy = strategies.strategy_for(values.get("strategy_key"))
    if strategy is not None:
        base = current["parameters"] if values["strategy_key"] == current["strategy_key"] else {}
        # Defaults first: a parameter added to the registry later is filled in on the next edit.
        base = {**strategy.defaults(), **{k: v for k, v in base.items() if strategy.parameter(k)}}
        values["parameters"] = _merge(base, changes.get("parameters", {}), null_means=strategy.defaults())
    values["risk_limits"] = _merge(current["risk_limits"], changes.get("risk_limits", {}), null_means=None)
    clean, errors = _validate(values, bot_id=locked.pk)
    if errors:
        raise BotValidationError(errors, "The change is not valid.")
    moved = sorted(k for k in LIVE_LOCKED_FIELDS if clean[k] != current[k])
    if locked.stage == Stage.LIVE and moved:
        raise BotChangeRefused(
            f"Bot {locked.name} is LIVE: {', '.join(moved)} cannot change while it trades real money.",
            suggested_fix="Demote it to PAPER (POST /api/bots/{id}/demote), change it, and promote it again.",
        )
    if locked.stage == Stage.LIVE and (missing := strategies.missing_risk_limits(clean["risk_limits"])):
        raise BotChangeRefused(
            f"Bot {locked.name} is LIVE and must keep every risk limit ({', '.join(missing)} would be unset).",
            suggested_fix="Tighten a limit instead of removing it, or demote the bot first.",
        )

    changed = [k for k in EDITABLE_FIELDS if clean[k] != current[k]]
    if not changed:
        return locked
    before = _snapshot(locked, [*changed, "config_version"])
    for name in changed:
        setattr(locked, name, clean[name])
    config_changed = "parameters" in changed or "risk_limits" in changed
    if config_changed:
        locked.config_version += 1
    try:
        with transaction.atomic():
            locked.save(update_fields=[*changed, "config_version", "updated_at"])
    except IntegrityError:
        raise BotValidationError({"name": [f"a bot named {clean['name']!r} already exists."]}) from None
    if config_changed:
        _record_version(bot=locked, actor=actor, reason=reason)
    audit_record(
        action="bot.update",
        actor=actor,
        target=locked,
        reason=reason,
        before=before,
        after=_snapshot(locked, [*changed, "config_version"]),
    )
    return locked


@dataclass
class StarterPackResult:
    created: list[Bot] = field(default_factory=list)
    existing: list[Bot] = field(default_factory=list)


@transaction.atomic
def bot_starter_pack(*, actor: Any) -> StarterPackResult:
    """Create the curated starter bots (strategies.STARTER_PACK) that do not exist yet, by name.
    Idempotent: a second call creates nothing and lists them all as existing."""
    result = StarterPackResult()
    for spec in strategies.STARTER_PACK:
        existing = Bot.objects.filter(name__iexact=spec["name"]).first()
        if existing is None:
            try:
                with transaction.atomic():
                    result.created.append(bot_create(actor=actor, reason="starter pack", **spec))
                continue
            except BotValidationError:
                # A concurrent call made it first; anything else wrong with the spec re-raises.
                existing = Bot.objects.filter(name__iexact=spec["name"]).first()
                if existing is None:
                    raise
        result.existing.append(existing)
    if result.created:
        audit_record(
            action="bot.starter_pack",
            actor=actor,
            target_type="bots.starter_pack",
            after={"created": [b.name for b in result.created], "existing": [b.name for b in result.existing]},
        )
    return result


# --- stage changes -----------------------------------------------------------------------------


@dataclass
class StageChange:
    bot: Bot
    from_stage: str
    to_stage: str
    gates: list[dict[str, Any]]
    override: bool


def _require_reason(reason: str | None) -> str:
    if not reason or not reason.strip():
        raise BotValidationError({"reason": ["is required: say why, for the audit trail."]})
    return reason.strip()


def bot_promote(*, bot: Bot, to_stage: str, reason: str, actor: Any, override: bool = False) -> StageChange:
    """Promote one step (LAB→PAPER, PAPER→LIVE) if every gate passes.

    Checks, in order: the reason; that it is a promotion (409 INVALID_STAGE_TRANSITION); the role
    (PAPER: operator, LIVE: admin; 403); the override (admin, LAB→PAPER only); the gates
    (409 PROMOTION_GATE_FAILED with the table). Refusals are audited. The gates are evaluated on
    `bot` as given; the stage then moves by one conditional UPDATE guarded by every column the
    gates read, so a concurrent promotion, edit or kill makes it refuse instead of promoting a bot
    that was not judged."""
    reason = _require_reason(reason)
    from_stage = bot.stage

    def refuse(error: ApplicationError) -> NoReturn:
        _refuse(action="promote", bot=bot, actor=actor, reason=reason, error=error)

    if to_stage not in Stage.values:
        raise BotValidationError({"to_stage": [f"must be one of: {', '.join(Stage.values)}."]})
    if selectors.PROMOTIONS.get(from_stage) != to_stage:
        refuse(InvalidStageTransition(selectors.stage_transition_refusal(from_stage, to_stage)))
    needed = Role.ADMIN if to_stage == Stage.LIVE else Role.OPERATOR
    if not _has_role(actor, needed):
        refuse(
            LifecyclePermissionDenied(
                f"Promotion to {to_stage} needs the {needed.group_name} role.",
                suggested_fix="Ask an admin to promote it." if needed == Role.ADMIN else None,
            )
        )
    overridable = selectors.OVERRIDABLE_GATES.get((from_stage, to_stage), frozenset())
    if override and not overridable:
        refuse(
            BotValidationError(
                {"override": [f"{from_stage}→{to_stage} can never be overridden: every gate must pass."]},
                "This promotion cannot be overridden.",
            )
        )
    if override and not _has_role(actor, Role.ADMIN):
        refuse(LifecyclePermissionDenied("Only an admin may override a promotion gate."))

    error: ApplicationError | None = None
    with transaction.atomic():
        if to_stage == Stage.LIVE:
            # Hold the runner row: a start waiting on it sees LIVE once this commits (and starts in
            # LIVE mode), instead of a SIM runner slipping in under a LIVE bot.
            _lock_runner(bot)
        gates = selectors.bot_promotion_gates(bot=bot, to_stage=to_stage)
        failing = [g["name"] for g in gates if not g["passed"]]
        forced = [name for name in failing if override and name in overridable]
        blocking = [name for name in failing if name not in forced]
        if forced:
            gates.append(
                {
                    "name": "admin_override",
                    "passed": True,
                    "detail": f"{_label(actor)} overrode {', '.join(forced)}: {reason}",
                }
            )
        if blocking:
            error = PromotionGateFailed(
                f"{from_stage}→{to_stage} refused: {len(blocking)} gate(s) failed ({', '.join(blocking)}).",
                gates=gates,
            )
        else:
            now = timezone.now()
            guard = {name: getattr(bot, name) for name in GATE_INPUT_FIELDS}
            moved = Bot.objects.filter(pk=bot.pk, **guard).update(stage=to_stage, updated_at=now)
            if moved != 1:
                error = _concurrent_change_error(bot, from_stage)
            else:
                bot.stage, bot.updated_at = to_stage, now
                audit_record(
                    action="bot.promote",
                    actor=actor,
                    target=bot,
                    reason=reason,
                    before={"stage": from_stage},
                    after={"stage": to_stage, "override": bool(forced), "overridden_gates": forced, "gates": gates},
                )
                _invalidate_status()
    if error is not None:
        refuse(error)
    return StageChange(bot=bot, from_stage=from_stage, to_stage=to_stage, gates=gates, override=bool(forced))


def _lock_runner(bot: Bot) -> None:
    Runner = apps.get_model("runners", "Runner")
    list(Runner.objects.select_for_update().filter(bot_id=bot.pk).values_list("pk", flat=True))


def _concurrent_change_error(bot: Bot, from_stage: str) -> ApplicationError:
    now_stage = Bot.objects.filter(pk=bot.pk).values_list("stage", flat=True).first()
    if now_stage != from_stage:
        return InvalidStageTransition(
            f"Bot {bot.name} is no longer {from_stage} (it is {now_stage} now): another change got there first."
        )
    return BotChangedConcurrently(
        f"Bot {bot.name} changed (config, venue or kill latch) while its gates were evaluated; nothing was promoted."
    )


def bot_demote(*, bot: Bot, to_stage: str, reason: str, actor: Any, actor_label: str = "") -> StageChange:
    """Move to any lower stage, or retire. Always allowed (no gates) for an operator or for the
    system (the supervisor's circuit breakers demote, with actor=None and actor_label
    "system:<component>"). The autonomy tier drops to LOCKED: trust is re-earned at the new stage.
    The API route is apps.runners' bot_demote, which also stops a runner the new stage cannot keep."""
    reason = _require_reason(reason)
    from_stage = bot.stage

    def refuse(error: ApplicationError) -> NoReturn:
        _refuse(action="demote", bot=bot, actor=actor, actor_label=actor_label, reason=reason, error=error)

    if to_stage not in Stage.values:
        raise BotValidationError({"to_stage": [f"must be one of: {', '.join(Stage.values)}."]})
    is_person = getattr(actor, "is_authenticated", False)
    if is_person and not _has_role(actor, Role.OPERATOR):
        refuse(LifecyclePermissionDenied("Demotion needs the operator role."))
    if not is_person and not actor_label.startswith("system:"):
        refuse(LifecyclePermissionDenied("A demotion needs a signed-in operator or a named system component."))
    if to_stage not in selectors.bot_demotion_targets(bot):
        targets = selectors.bot_demotion_targets(bot)
        refuse(
            InvalidStageTransition(
                f"{from_stage}→{to_stage} is not a demotion: "
                + (f"from {from_stage} demote to {', '.join(targets)}." if targets else "RETIRED is final.")
            )
        )
    error: ApplicationError | None = None
    with transaction.atomic():
        now = timezone.now()
        before = {"stage": from_stage, "autonomy_tier": bot.autonomy_tier}
        moved = Bot.objects.filter(pk=bot.pk, stage=from_stage).update(
            stage=to_stage, autonomy_tier=Bot.Tier.LOCKED, updated_at=now
        )
        if moved != 1:
            error = _concurrent_change_error(bot, from_stage)
        else:
            bot.stage, bot.autonomy_tier, bot.updated_at = to_stage, Bot.Tier.LOCKED, now
            audit_record(
                action="bot.demote",
                actor=actor,
                actor_label=_label(actor, actor_label),
                target=bot,
                reason=reason,
                before=before,
                after={"stage": to_stage, "autonomy_tier": Bot.Tier.LOCKED},
            )
            _invalidate_status()
    if error is not None:
        refuse(error)
    return StageChange(bot=bot, from_stage=from_stage, to_stage=to_stage, gates=[], override=False)


# --- the kill latch ----------------------------------------------------------------------------


def bot_kill_latch(*, bot: Bot, actor: Any, actor_label: str, reason: str) -> bool:
    """Set the kill latch in one conditional UPDATE. True if this call latched it, False if it was
    already latched (the first kill's time, reason and author are kept). Runners, orders and
    positions are apps.runners' job; call this first, and commit it before anything else."""
    reason = _require_reason(reason)
    now = timezone.now()
    label = _label(actor, actor_label)
    with transaction.atomic():
        latched = Bot.objects.filter(pk=bot.pk, killed=False).update(
            killed=True, killed_at=now, kill_reason=reason, killed_by=label, updated_at=now
        )
        if latched:
            audit_record(
                action="bot.kill_latch",
                actor=actor,
                actor_label=label,
                target=bot,
                reason=reason,
                before={"killed": False},
                after={"killed": True, "killed_at": now.isoformat(), "killed_by": label},
            )
            _invalidate_status()
    bot.refresh_from_db(fields=["killed", "killed_at", "kill_reason", "killed_by", "updated_at"])
    return bool(latched)


def bot_unkill(*, bot: Bot, actor: Any, reason: str) -> bool:
    """Clear the kill latch. Only a signed-in operator or admin may, with a reason: a kill that the
    system tripped (e.g. the supervisor) is cleared by a person who looked, never by the system.
    True if this call cleared it, False if the bot was not killed. Refusals are audited:
    403 UNKILL_REFUSED for the wrong actor, 400 VALIDATION_ERROR without a reason. Unkill
    restarts nothing."""
    if not getattr(actor, "is_authenticated", False):
        # None, an anonymous user, or a component label such as "system:supervisor".
        who = actor if isinstance(actor, str) and actor else "system"
        _refuse(
            action="unkill",
            bot=bot,
            actor=None,
            actor_label=who,
            reason=reason or "",
            error=UnkillRefused(f"{who} cannot clear a kill: only a signed-in operator or admin can."),
        )
    if not _has_role(actor, Role.OPERATOR):
        _refuse(
            action="unkill",
            bot=bot,
            actor=actor,
            reason=reason or "",
            error=UnkillRefused(f"{_label(actor)} cannot clear a kill: it needs the operator or admin role."),
        )
    if not reason or not reason.strip():
        _refuse(
            action="unkill",
            bot=bot,
            actor=actor,
            reason="",
            error=BotValidationError({"reason": ["is required: say what was fixed."]}, "An unkill needs a reason."),
        )
    reason = reason.strip()
    with transaction.atomic():
        before = Bot.objects.filter(pk=bot.pk).values("killed_at", "kill_reason", "killed_by").first() or {}
        cleared = Bot.objects.filter(pk=bot.pk, killed=True).update(
            killed=False, killed_at=None, kill_reason="", killed_by="", updated_at=timezone.now()
        )
        if cleared:
            audit_record(
                action="bot.unkill",
                actor=actor,
                target=bot,
                reason=reason,
                before={
                    "killed": True,
                    "killed_at": before["killed_at"].isoformat() if before.get("killed_at") else None,
                    "kill_reason": before.get("kill_reason"),
                    "killed_by": before.get("killed_by"),
                },
                after={"killed": False},
            )
            _invalidate_status()
    bot.refresh_from_db(fields=["killed", "killed_at", "kill_reason", "killed_by", "updated_at"])
    return bool(cleared)
