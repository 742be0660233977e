"""What a limit is: the five figures a layer can carry, the four layers, and the plans.

A figure of ``None`` means "no limit on this layer". Overrides stored in the database use
``None`` for "inherit from the plan" and :data:`UNLIMITED` for "explicitly no limit", so an
operator can lift a plan's limit for one key without editing the plan.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields, replace

UNLIMITED = -1
"""Stored in an override or plan figure: no limit, even if the plan sets one."""


class Layer(enum.StrEnum):
    """The four layers, outermost first; a request must pass all of them."""

    GLOBAL = "global"
    TENANT = "tenant"
    ENVIRONMENT = "environment"
    KEY = "key"


class Kind(enum.StrEnum):
    """One figure of a layer."""

    RPM = "rpm"
    TPM = "tpm"
    RPD = "rpd"
    TPD = "tpd"
    CONCURRENCY = "concurrency"

    @property
    def counts_tokens(self) -> bool:
        return self in (Kind.TPM, Kind.TPD)

    @property
    def is_daily(self) -> bool:
        return self in (Kind.RPD, Kind.TPD)


KINDS: tuple[Kind, ...] = tuple(Kind)


@dataclass(frozen=True, slots=True)
class Limits:
    """The effective figures of one layer; ``None`` is unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    tpd: int | None = None
    concurrency: int | None = None

    def get(self, kind: Kind) -> int | None:
        value: int | None = getattr(self, kind.value)
        return value

    def overlay(self, other: LimitFigures) -> Limits:
        """These limits with ``other``'s set figures on top (``UNLIMITED`` clears one)."""
        changes = {}
        for f in fields(self):
            value = getattr(other, f.name)
            if value is not None:
                changes[f.name] = None if value == UNLIMITED else value
        return replace(self, **changes) if changes else self

    def as_dict(self) -> dict[str, int | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def is_unlimited(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


@dataclass(frozen=True, slots=True)
class LimitFigures:
    """Figures as stored (plan row or override): ``None`` inherits, ``UNLIMITED`` lifts."""

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    tpd: int | None = None
    concurrency: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class LayerLimits:
    """The effective limits of one layer for one caller; ``ident`` names the counters."""

    layer: Layer
    ident: str
    limits: Limits


DEFAULT_PLANS: dict[tuple[str, Layer], LimitFigures] = {
    ("free", Layer.TENANT): LimitFigures(
        rpm=60, tpm=40_000, rpd=1_000, tpd=1_000_000, concurrency=4
    ),
    ("free", Layer.KEY): LimitFigures(rpm=60, tpm=40_000, concurrency=4),
    ("pro", Layer.TENANT): LimitFigures(
        rpm=1_000, tpm=1_000_000, rpd=100_000, tpd=100_000_000, concurrency=64
    ),
    ("enterprise", Layer.TENANT): LimitFigures(rpm=10_000, tpm=10_000_000, concurrency=512),
}
"""The plans while the ``plan_limits`` table is empty (a new deployment); the first
``cicfleet plans set`` writes them to the table, where they are edited from then on."""
