"""Real ONNX filters for tests: logistic regressions trained on synthetic vectors, with chosen thresholds."""
from __future__ import annotations

import json

import numpy as np

from server.features import FEATURE_VERSION
from training import filter as trainer


def synthetic(n: int, names: tuple[str, ...], seed: int = 0) -> trainer.StageData:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(names))).astype(np.float32)
    y = (x[:, 0] - x[:, 1] + rng.normal(scale=0.5, size=n) > 0).astype(np.int64)
    return trainer.StageData(x, y, np.ones(n), y * rng.integers(1, 40, size=n))


def write_filter(folder, thresholds: dict[str, float] | None = None) -> None:
    """A filter in `folder` whose "medium" threshold per stage is `thresholds[stage]` (0.5 if not given): 1.0
    rejects everything at that stage, 0.0 lets everything through."""
    folder.mkdir(parents=True)
    manifest = {"name": folder.name, "feature_version": FEATURE_VERSION, "stages": {}}
    for stage, names in trainer.NAMES.items():
        model = trainer.fit(synthetic(300, names))
        (folder / f"{stage}.onnx").write_bytes(trainer.to_onnx(model, len(names)))
        medium = (thresholds or {}).get(stage, 0.5)
        manifest["stages"][stage] = {"file": f"{stage}.onnx", "features": list(names),
                                     "thresholds": {"low": 0.0, "medium": medium, "high": max(medium, 0.9)},
                                     "parameters": trainer.parameters(model)}
    (folder / "filter.json").write_text(json.dumps(manifest))
