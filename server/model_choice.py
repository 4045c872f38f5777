"""`ghostline.model: auto`: the larger model where this machine can serve it while the user types, else the
default one; the reason goes to the status bar.

Where the numbers come from (`python -m training.suffix_reuse --cases 10 --limit 24 [--model NAME]`, 2 cores,
the shipped `reuse_suffix`): a keystroke's prompt takes P50 151 ms on the default 0.5B and 326 ms on the 1.5B
instruct model, and the last keystroke to a whole line P50 174 / P90 661 ms against 544 / 985 ms (3.1x). Keys
come about 170 ms apart inside a word, so on 2 cores the 1.5B answers after the next keystroke. On a CPU
llama.cpp's time per token grows with the weights read (the 1.5B has 3.1x the 0.5B's), so it needs about
three times these cores for the 0.5B's latency here: `CPU_CORES_FOR_LARGER`, an extrapolation (no machine
with more cores was measured). With GPU offload (llama.cpp built with CUDA, Metal or Vulkan) the 1.5B is far
inside the budget.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from .models import default_model_name, load_manifests, models_dir

AUTO = "auto"
# the 1.5B manifests, best first: the base model infills better; the instruct one comes from PyPI like the default
LARGER = ("qwen2.5-coder-1.5b-q4_k_m", "qwen2.5-coder-1.5b-instruct-q4_k_m")
CPU_CORES_FOR_LARGER = 6


@dataclass(frozen=True)
class Choice:
    model: str  # a manifest name
    why: str  # one line for the status bar


def gpu_offload() -> bool:
    """Whether this llama.cpp build can put layers on a GPU (the PyPI wheel is CPU-only)."""
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def serving_threads() -> int:
    """The threads llama.cpp computes with (GHOSTLINE_THREADS, else one a core): what `auto` judges speed by."""
    return int(os.environ.get("GHOSTLINE_THREADS", "0")) or os.cpu_count() or 1


def downloaded(name: str) -> bool:
    m = load_manifests().get(name)
    return m is not None and (models_dir() / m.file).is_file()


def choose(*, gpu: bool, cores: int, present: Callable[[str], bool] = downloaded) -> Choice:
    default = default_model_name()
    larger = next((name for name in LARGER if present(name)), None)
    if larger and gpu:
        return Choice(larger, f"auto: {larger}, on the GPU")
    if larger and cores >= CPU_CORES_FOR_LARGER:
        return Choice(larger, f"auto: {larger}, {cores} cores")
    if not gpu and cores < CPU_CORES_FOR_LARGER:
        why = f"{cores} cores and no GPU offload: a 1.5B would answer after the next keystroke"
    else:
        why = f"no 1.5B is downloaded (`python -m server.models pull {LARGER[-1]}`)"
    return Choice(default, f"auto: {default}; {why}")


def resolve_auto(model: str | None) -> tuple[str | None, str | None]:
    """(model to load, why) for the `ghostline.model` setting: `auto` becomes a manifest name."""
    if model != AUTO:
        return model, None
    choice = choose(gpu=gpu_offload(), cores=serving_threads())
    return choice.model, choice.why
