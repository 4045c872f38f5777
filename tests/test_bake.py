"""The shipped adapter baked into the model's weights: made once, used only while it matches the files it was made
from, answering as base + adapter do."""
import logging
import os

import numpy as np
import pytest

from server import bake, registry
from server.models import ResolvedModel
from server.registry import Adapter


@pytest.fixture
def fake_bake(tmp_path, monkeypatch):
    """bake() with the merge replaced by a writer of small files (counted)."""
    monkeypatch.setenv("GHOSTLINE_MODELS_DIR", str(tmp_path / "models"))
    calls = []

    def merge_into(base, adapter, out):
        calls.append((base, adapter))
        out.write_bytes(base.read_bytes()[::-1] + adapter.read_bytes())
        return out
    monkeypatch.setattr(bake, "merge_into", merge_into)
    (tmp_path / "base.gguf").write_bytes(b"base weights")
    (tmp_path / "lora.gguf").write_bytes(b"lora")
    base = ResolvedModel("base", tmp_path / "base.gguf", "qwen", "aa" * 32)
    return base, Adapter("fim", base.identity, tmp_path / "lora.gguf", "cc" * 32), calls


def test_a_baked_file_serves_only_while_it_matches_the_files_it_was_made_from(fake_bake, caplog):
    base, adapter, calls = fake_bake
    assert bake.find(base, adapter) is None
    path = bake.bake(base, adapter)
    assert path.read_bytes() == b"sthgiew esablora" and bake.find(base, adapter) == path
    assert bake.bake(base, adapter) == path and len(calls) == 1  # made once
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.with_suffix(".json").name]

    retrained = Adapter("fim", base.identity, adapter.path, "dd" * 32)
    assert bake.find(base, retrained) is None  # another adapter of the same name is baked again
    assert bake.find(ResolvedModel("base", base.path, "qwen", "ee" * 32), adapter) is None  # another base
    path.write_bytes(b"something else")  # a damaged or replaced file
    os.utime(path, ns=(1, 1))
    with caplog.at_level(logging.WARNING):
        assert bake.find(base, adapter) is None
    assert "not the file that was baked" in caplog.text
    assert bake.bake(base, adapter) == path and len(calls) == 2 and bake.find(base, adapter) == path
    made = path.with_suffix(".json")
    made.write_text(made.read_text().replace(f'"format": {bake.FORMAT}', '"format": 1'))
    assert bake.find(base, adapter) is None  # made another way: baked again
    made.write_text("{not json")
    assert bake.find(base, adapter) is None


def test_a_failed_bake_leaves_nothing_behind(fake_bake, monkeypatch):
    base, adapter, _ = fake_bake

    def broken(base, adapter, out):
        out.write_bytes(b"half a file")
        raise OSError("disk full")
    monkeypatch.setattr(bake, "merge_into", broken)
    with pytest.raises(OSError, match="disk full"):
        bake.bake(base, adapter)
    assert not list(bake.baked_path(base, adapter).parent.iterdir()) and bake.find(base, adapter) is None


def test_promoting_bakes_the_adapter_and_keeps_only_the_bakes_still_served(fake_bake, monkeypatch, caplog):
    base, adapter, _ = fake_bake
    shipped = bake.bake(base, Adapter("shipped", base.identity, adapter.path, "11" * 32))
    older = bake.bake(base, Adapter("older", base.identity, adapter.path, "22" * 32))
    other_base = bake.bake(ResolvedModel("other", base.path, "qwen", "ff" * 32), adapter)
    path = bake.bake_promoted(base, adapter, keep={"shipped@11111111"})
    assert path == bake.find(base, adapter) and shipped.exists() and other_base.exists()
    assert not older.exists() and not older.with_suffix(".json").exists()

    def broken(base, adapter, out):
        raise ValueError("not a GGUF file")
    monkeypatch.setattr(bake, "merge_into", broken)
    with caplog.at_level(logging.WARNING):
        assert bake.bake_promoted(base, Adapter("new", base.identity, adapter.path, "33" * 32), keep=set()) is None
    assert "applied at run time" in caplog.text and not path.exists()  # no longer kept


FIM_PROMPTS = ("<|fim_prefix|>def mean(xs):\n    <|fim_suffix|>\n\nprint(mean([1, 2]))\n<|fim_middle|>",
               "<|fim_prefix|>function add(a, b) {\n  return <|fim_suffix|>;\n}\n<|fim_middle|>",
               "<|fim_prefix|>import os\n\nfor name in os.listdir(path):\n<|fim_suffix|>\n<|fim_middle|>")


def logits(model, lora=None) -> np.ndarray:
    from test_finetune import next_logits
    return next_logits(model, lora, FIM_PROMPTS)


def kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean KL divergence between the next-token distributions of two rows of logits each."""
    lp, lq = (x - x.max(1, keepdims=True) for x in (p, q))
    lp, lq = (x - np.log(np.exp(x).sum(1, keepdims=True)) for x in (lp, lq))
    return float((np.exp(lp) * (lp - lq)).sum(1).mean())


@pytest.fixture
def provisioned():
    """The default model, its shipped adapter, and the file `python -m server.models pull` baked them into."""
    from server.models import resolve
    base = resolve(None)
    adapter = registry.resolve_adapter(registry.shipped(base.identity), base)
    path = bake.find(base, adapter)
    assert path is not None, "`python -m server.models pull` did not bake the shipped adapter"
    return base, adapter, path


@pytest.mark.model
def test_the_baked_model_changes_only_what_the_adapter_adapts_and_answers_as_base_plus_adapter(provisioned):
    import gguf
    base, adapter, path = provisioned

    ours, theirs = gguf.GGUFReader(str(path)), gguf.GGUFReader(str(base.path))
    pairs = bake.read_adapter(adapter.path)[0]
    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    for a, b in zip(ours.tensors, theirs.tensors):
        if a.name + ".lora_a" in pairs:  # adapted: 8 bits, or its own type where that is finer
            assert a.tensor_type == bake.stored_as(b.tensor_type, int(b.shape[0])) and a.tensor_type.name in (
                "Q8_0", "F16", "F32") and not np.array_equal(a.data, b.data), a.name
        else:  # byte for byte the base's
            assert a.tensor_type == b.tensor_type and np.array_equal(a.data, b.data), a.name
    assert path.stat().st_size < 1.3 * base.path.stat().st_size
    baked, runtime_lora, bare = logits(path), logits(base.path, adapter.path), logits(base.path)
    to_baked, to_bare = kl(runtime_lora, baked), kl(runtime_lora, bare)
    assert to_baked < 0.1 * to_bare, (to_baked, to_bare)  # quantized again, still close to base + adapter
    assert (baked.argmax(1) == runtime_lora.argmax(1)).all()


@pytest.mark.model
def test_the_runtime_loads_the_baked_file_unless_a_trial_needs_the_bare_weights(provisioned, tmp_path,
                                                                                 monkeypatch):
    from server import trial
    from server.models import ModelError
    from server.runtime import PROMOTED_ADAPTER, SHIPPED_ADAPTER, load_runtime
    base, adapter, path = provisioned
    monkeypatch.setattr(registry, "adapters_dir", lambda: tmp_path / "registry")  # nothing of the user's
    served = load_runtime(None, PROMOTED_ADAPTER)
    assert served.baked == path and served.adapter == adapter  # the same identity, in telemetry too
    assert served.model_id == f"{base.identity}+{adapter.identity}"
    with pytest.raises(ModelError, match="baked into these weights"):
        served.add_arm("old", None)
    assert load_runtime(None, SHIPPED_ADAPTER).baked == path and load_runtime(None, "none").baked is None

    trial.start(base.identity, adapter.name, None)  # the shipped adapter on trial against the bare base
    compared = load_runtime(None, PROMOTED_ADAPTER)
    assert compared.baked is None and compared.trial is not None and compared.adapter == adapter
