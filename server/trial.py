"""The online A/B that confirms a promoted adapter on the user's own outcomes.

Promotion is decided offline (held-out files); after it, a share of model calls is served by the version
promoted before (another adapter, or the bare base model) and the two are compared on what the user does
with the suggestions they were shown: characters accepted per suggestion shown (a partial accept counts its
accepted part). Once the difference is clear the loser goes: a new adapter that does worse is rolled back
(the server swaps back without a restart), one that does better, or no worse over `MAX_OLD_SHOWN` of the
old version's suggestions, serves alone. Each model call's arm is drawn independently with a known
probability (the share), so the comparison needs no reweighting; telemetry records which version answered
in its `model_id`.

Nothing is counted unless the user turned telemetry on (as for every outcome Ghostline keeps); the counts
(no code) are kept in `<models dir>/adapters/trial.json`: {base identity: trial}.
"""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field

from .registry import read_state, write_state

log = logging.getLogger(__name__)

TRIALS = "trial.json"
SHARE = 0.1  # of model calls served by the previous version while a trial runs
MIN_SHOWN = 100  # suggestions shown per arm before any verdict
MAX_OLD_SHOWN = 1000  # the previous version's shown suggestions after which "no worse" confirms the new one
Z = 3.0  # checked after every outcome: a stricter bar than 1.96 keeps the repeated looks from crying wolf
ARMS = ("new", "old")


@dataclass
class Trial:
    base: str  # the base model's identity
    new: str | None  # the adapter promoted last (what serves)
    old: str | None  # the one promoted before it; None: the bare base model
    share: float = SHARE
    started: float = field(default_factory=time.time)
    # per arm: [suggestions shown, suggestions accepted (in full or in part), characters accepted, their squares]
    stats: dict[str, list[float]] = field(default_factory=lambda: {a: [0, 0, 0.0, 0.0] for a in ARMS})
    ended: str | None = None  # None while running; else "confirmed" or "rolled back", and why

    def draw(self, rng: random.Random) -> str:
        """The arm that serves the next model call."""
        return "old" if rng.random() < self.share else "new"

    def propensity(self, arm: str) -> float:
        return self.share if arm == "old" else 1 - self.share

    def shown(self, arm: str) -> None:
        self.stats[arm][0] += 1

    def accepted(self, arm: str, chars: int) -> None:
        s = self.stats[arm]
        s[1] += 1
        s[2] += chars
        s[3] += chars * chars

    def summary(self, arm: str) -> tuple[int, float, float]:
        """(shown, accept rate, characters accepted per suggestion shown)."""
        n, a, c, _ = self.stats[arm]
        return int(n), (a / n if n else 0.0), (c / n if n else 0.0)

    def z(self) -> float:
        """Welch's z of new - old in characters accepted per suggestion shown (0 while either arm has none)."""
        var = 0.0
        means = {}
        for arm in ARMS:
            n, _, c, c2 = self.stats[arm]
            if n < 2:
                return 0.0
            means[arm] = c / n
            var += max(c2 / n - means[arm] ** 2, 0.0) * n / (n - 1) / n
        return (means["new"] - means["old"]) / math.sqrt(var) if var > 0 else 0.0

    def verdict(self) -> str | None:
        """"old" (roll the new one back), "new" (it stays, alone) or None (not clear yet)."""
        n_new, n_old = self.stats["new"][0], self.stats["old"][0]
        if min(n_new, n_old) < MIN_SHOWN:
            return None
        z = self.z()
        if z <= -Z:
            return "old"
        if z >= Z or n_old >= MAX_OLD_SHOWN:
            return "new"
        return None

    def describe(self) -> str:
        parts = []
        for arm, name in (("new", self.new), ("old", self.old)):
            n, rate, chars = self.summary(arm)
            parts.append(f"{name or 'no adapter'}: {n} shown, accept rate {rate:.2f}, {chars:.1f} characters "
                         f"accepted per suggestion")
        return "; ".join(parts)


def load(base: str) -> Trial | None:
    """The trial for `base` (running or ended), or None."""
    d = read_state(TRIALS).get(base)
    try:
        return Trial(**d) if isinstance(d, dict) else None
    except TypeError as e:
        log.warning("ignoring the trial for %s: %s", base, e)
        return None


def save(trial: Trial) -> None:
    write_state(TRIALS, {**read_state(TRIALS), trial.base: asdict(trial)})


def start(base: str, new: str | None, old: str | None) -> Trial | None:
    """A new trial of `new` against `old` on `base` (replacing any earlier one); None when they are the same."""
    if new == old:
        return None
    trial = Trial(base, new, old)
    save(trial)
    return trial


def end(trial: Trial, how: str) -> None:
    trial.ended = how
    save(trial)
