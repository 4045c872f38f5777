"""One typed settings object, parsed once from initializationOptions / didChangeConfiguration.

Bad values fall back to the default and produce a message the server shows the user.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from .templates import TEMPLATES

CHOICES = {
    "multiline": ("auto", "always", "never"),
    "filterAggressiveness": ("off", "low", "medium", "high"),
    "telemetryLevel": ("off", "metrics", "training"),
    "remoteTemplate": tuple(TEMPLATES),
}
RANGES = {"maxTokens": (1, 512), "debounceMs": (0, 2000), "remoteTimeoutMs": (100, 60000)}
# the settings that choose what generates: a change reloads it
MODEL_KEYS = ("model", "remoteUrl", "remoteModel", "remoteTemplate", "remoteTimeoutMs", "remoteLogprobs")


@dataclass(frozen=True)
class Settings:
    enable: bool = True
    languages: dict = field(default_factory=dict)
    model: str = ""  # empty: the default manifest
    maxTokens: int = 128
    multiline: str = "auto"
    debounceMs: int = 150
    filterAggressiveness: str = "medium"
    telemetryLevel: str = "off"
    # A serving engine's OpenAI-compatible completions API (server.remote); empty: the model runs here.
    remoteUrl: str = ""
    remoteModel: str = ""  # empty: the first model the engine lists
    remoteTemplate: str = "qwen"  # the FIM tokens of the model the engine serves
    remoteTimeoutMs: int = 5000
    remoteLogprobs: bool = False  # per-token log-probabilities from the engine (block confidence)
    clientTelemetryEnabled: bool = True

    def enabled_for(self, language: str) -> bool:
        langs = self.languages or {}
        if language in langs:
            return bool(langs[language]) and self.enable
        return self.enable and bool(langs.get("*", True))


def _check(name: str, value: Any, default: Any) -> str | None:
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        lo, hi = RANGES[name]
        return None if lo <= value <= hi else f"must be between {lo} and {hi}"
    if name in CHOICES:
        return None if value in CHOICES[name] else f"must be one of {', '.join(CHOICES[name])}"
    if isinstance(default, str):
        return None if isinstance(value, str) else "must be a string"
    if isinstance(default, dict):
        if not isinstance(value, dict) or not all(isinstance(v, bool) for v in value.values()):
            return "must be an object of language id -> true/false"
    return None


def parse_settings(raw: Any, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Merge `raw` (a dict, possibly nested under "ghostline") into `base`; unknown keys are ignored."""
    base = base or Settings()
    if not isinstance(raw, dict):
        return base, ([] if raw is None else [f"settings must be an object, got {type(raw).__name__}"])
    if isinstance(raw.get("ghostline"), dict):
        raw = raw["ghostline"]
    defaults = Settings()
    changes, problems = {}, []
    for f in fields(Settings):
        if f.name not in raw or raw[f.name] is None:
            continue
        value = raw[f.name]
        if isinstance(getattr(defaults, f.name), int) and isinstance(value, float) and value.is_integer():
            value = int(value)
        err = _check(f.name, value, getattr(defaults, f.name))
        if err:
            problems.append(f"ghostline.{f.name} {err} (got {value!r}); using {getattr(defaults, f.name)!r}")
            changes[f.name] = getattr(defaults, f.name)
        else:
            changes[f.name] = value
    return replace(base, **changes), problems
