"""Per-zone spot trouble that fades: preemptions and capacity errors, exponentially decayed.

A zone that preempted us an hour ago is a worse bet than one that never did, but a zone that
preempted us last week is as good as any. Each event adds 1 to the zone's score, which halves
every ``half_life`` seconds; placement prefers zones with low scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class ZoneTrouble:
    """Decayed event scores per ``region/zone`` key (a float each, updated lazily)."""

    half_life: float = 3600.0
    _score: dict[str, float] = field(default_factory=dict)
    _at: dict[str, float] = field(default_factory=dict)

    def record(self, place: str, now: float, weight: float = 1.0) -> None:
        self._score[place] = self.score(place, now) + weight
        self._at[place] = now

    def score(self, place: str, now: float) -> float:
        if place not in self._score:
            return 0.0
        age = max(0.0, now - self._at[place])
        return self._score[place] * math.pow(0.5, age / self.half_life)

    def scores(self, now: float) -> dict[str, float]:
        return {place: self.score(place, now) for place in self._score}


def place_key(region: str, zone: str | None) -> str:
    """The key a zone is known by: ``region/zone`` (or the region when no zone is known)."""
    return f"{region}/{zone}" if zone else region
