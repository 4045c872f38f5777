"""The show/no-show pipeline stages: a learned filter scores p(accept) and the request goes on only above
the threshold the user's `ghostline.filterAggressiveness` picks.

- Stage "before" runs in `Engine.admit` on `features.extract`: a rejected request never reaches the model.
- Stage "after" runs on the answer (`features.extract` + `features.extract_answer`): a rejected answer is
  not shown.
Each stage is a logistic regression exported to ONNX (`python -m training.filter`) and run by onnxruntime,
one session per stage created when the filter loads. Without a filter everything is shown.

Exploration keeps the training data fair: a small, decaying share of below-threshold decisions is served
anyway and logged with its propensity (the probability that the decision was "show"), so a new filter can be
evaluated on them without bias (inverse propensity weighting). A request explored at the first stage is shown
whatever the second says.
"""
from __future__ import annotations

import os
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .features import vectorize

AGGRESSIVENESS = ("off", "low", "medium", "high")
STAGES = ("before", "after")
# onnxruntime's official builds now send usage events to Microsoft on Linux and macOS too (1DS: its threads look
# up mobile.events.data.microsoft.com, which also stalls requests where DNS does not answer). Ghostline sends
# nothing anywhere. The opt-out must be in the environment before onnxruntime initialises, so it is set when
# this module, the one that loads onnxruntime for the server and for training, is imported.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"


class Filter(Protocol):
    name: str

    def score(self, stage: str, features: dict[str, float]) -> float | None:
        """p(accept) at `stage`, None when the filter has no model for it."""

    def threshold(self, stage: str, aggressiveness: str) -> float: ...


class NoFilter:
    name = "none"

    def score(self, stage: str, features: dict[str, float]) -> float | None:
        return None

    def threshold(self, stage: str, aggressiveness: str) -> float:
        return 0.0


class OnnxStage:
    """One stage's logistic regression in onnxruntime; `names` orders the feature vector as it was trained."""

    def __init__(self, path: Path, names: Sequence[str], thresholds: dict[str, float]):
        import onnxruntime as ort  # imported when a filter is loaded: the server without one never pays for it

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1  # the model's threads own the cores
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        outputs = [o.name for o in self.session.get_outputs()]
        if "probabilities" not in outputs:
            raise ValueError(f"{path.name}: no 'probabilities' output (export with zipmap off); has {outputs}")
        self.names = tuple(names)
        self.thresholds = {k: float(thresholds.get(k, 0.0)) for k in AGGRESSIVENESS}
        self.thresholds["off"] = 0.0
        self._lock = threading.Lock()  # InferenceSession.run is thread-safe, but one at a time keeps it cheap

    def score(self, features: dict[str, float]) -> float:
        import numpy as np

        return float(self.scores(np.asarray([vectorize(features, self.names)], dtype=np.float32))[0])

    def scores(self, x):
        """p(accept) for each row of `x` (float32, columns in `names` order)."""
        with self._lock:
            return self.session.run(["probabilities"], {self.input: x})[0][:, 1]


class LearnedFilter:
    def __init__(self, name: str, stages: dict[str, OnnxStage]):
        self.name = name
        self.stages = stages

    def score(self, stage: str, features: dict[str, float]) -> float | None:
        s = self.stages.get(stage)
        return None if s is None else s.score(features)

    def threshold(self, stage: str, aggressiveness: str) -> float:
        s = self.stages.get(stage)
        return 0.0 if s is None else s.thresholds.get(aggressiveness, s.thresholds["medium"])


@dataclass(frozen=True)
class Decision:
    show: bool
    score: float | None = None  # p(accept) from the filter's last stage that ran; None when none ran
    exploration: bool = False  # shown although below the threshold, to keep the training data fair
    propensity: float = 1.0  # probability that this decision was "show"
    filter: str = NoFilter.name  # which filter decided (telemetry keeps it next to the score)
    stage: str = ""  # the stage that decided: before | after ("" when no filter ran)


class Exploration:
    """The share of below-threshold decisions served anyway: `start`, halving every `half_life` decisions
    of this filter, never below `floor`."""

    FLOOR = 0.02

    def __init__(self, start: float = 0.10, floor: float = FLOOR, half_life: int = 2000,
                 rng: random.Random | None = None):
        self.start, self.floor, self.half_life = start, min(floor, start), half_life
        self.rng = rng or random.Random()
        self.decisions = 0

    def share(self) -> float:
        return max(self.floor, self.start * 0.5 ** (self.decisions / self.half_life))

    def draw(self) -> tuple[bool, float]:
        """(explore?, its probability) for one below-threshold decision."""
        p = self.share()
        self.decisions += 1
        return self.rng.random() < p, p


def decide(filt: Filter, stage: str, features: dict[str, float], aggressiveness: str,
           explore: Exploration) -> Decision:
    score = filt.score(stage, features)
    if score is None or aggressiveness == "off":
        return Decision(True, score, filter=filt.name, stage=stage if score is not None else "")
    if score >= filt.threshold(stage, aggressiveness):
        return Decision(True, score, filter=filt.name, stage=stage)
    shown, p = explore.draw()
    return Decision(shown, score, exploration=shown, propensity=p, filter=filt.name, stage=stage)
