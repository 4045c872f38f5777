"""The show/no-show pipeline stage.

A filter scores p(accept) from features before generation. Until a learned filter ships (ONNX, a later
issue) the default shows everything and logs no score; exploration and propensity are part of the
decision so telemetry can record them from day one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

THRESHOLDS = {"off": 0.0, "low": 0.10, "medium": 0.15, "high": 0.25}


class Filter(Protocol):
    name: str

    def score(self, features: dict[str, float]) -> float | None: ...


class NoFilter:
    name = "none"

    def score(self, features: dict[str, float]) -> float | None:
        return None


@dataclass(frozen=True)
class Decision:
    show: bool
    score: float | None = None  # p(accept) from the filter; None when no filter ran
    exploration: bool = False  # shown although below the threshold, to keep the training data fair
    propensity: float = 1.0  # probability that this decision was "show"
    filter: str = NoFilter.name  # which filter decided (telemetry keeps it next to the score)


def decide(filt: Filter, features: dict[str, float], aggressiveness: str) -> Decision:
    score = filt.score(features)
    if score is None or aggressiveness == "off":
        return Decision(True, score, filter=filt.name)
    return Decision(score >= THRESHOLDS.get(aggressiveness, THRESHOLDS["medium"]), score, filter=filt.name)
