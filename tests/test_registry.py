"""Adapters are found by name and only for the base model they were trained on."""
import json
import logging
from pathlib import Path

import pytest

from server import registry
from server.models import ModelError, ResolvedModel


@pytest.fixture
def bases(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTLINE_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(registry, "SHIPPED_DIR", tmp_path / "repo" / "adapters")  # none shipped unless a test ships
    return (ResolvedModel("base-a", tmp_path / "a.gguf", "qwen", "aa" * 32),
            ResolvedModel("base-b", tmp_path / "b.gguf", "qwen", "bb" * 32))


def lora(tmp_path: Path, data: bytes = b"lora weights") -> Path:
    p = tmp_path / "trained.gguf"
    p.write_bytes(data)
    return p


def test_an_adapter_is_listed_and_resolved_for_its_own_base_only(tmp_path, bases):
    a, b = bases
    got = registry.register_adapter("mine", a, lora(tmp_path))
    assert got.base == "base-a@aaaaaaaa" and got.path.read_bytes() == b"lora weights"
    assert registry.list_adapters(a.identity) == [got] and registry.list_adapters(b.identity) == []
    assert registry.resolve_adapter("mine", a) == got
    with pytest.raises(ModelError, match="trained for base-a@aaaaaaaa, not base-b@bbbbbbbb"):
        registry.resolve_adapter("mine", b)
    with pytest.raises(ModelError, match="known: mine"):
        registry.resolve_adapter("other", a)


def test_registering_again_replaces_the_adapter(tmp_path, bases):
    a, _ = bases
    first = registry.register_adapter("mine", a, lora(tmp_path, b"v1"))
    second = registry.register_adapter("mine", a, lora(tmp_path, b"v2"))
    assert first.sha256 != second.sha256 and registry.list_adapters() == [second]
    assert second.identity == f"mine@{second.sha256[:8]}"


def test_a_broken_entry_is_skipped_and_a_missing_file_refused(tmp_path, bases, caplog):
    a, _ = bases
    registry.register_adapter("good", a, lora(tmp_path))
    broken = registry.adapters_dir() / "broken"
    broken.mkdir()
    (broken / registry.ADAPTER_MANIFEST).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert [x.name for x in registry.list_adapters()] == ["good"]
    assert "skipping adapter" in caplog.text
    gone = registry.adapters_dir() / "gone"
    gone.mkdir()
    (gone / registry.ADAPTER_MANIFEST).write_text(json.dumps(
        {"name": "gone", "base": a.identity, "file": "adapter.gguf", "sha256": "cc" * 32}))
    with pytest.raises(ModelError, match="missing"):
        registry.resolve_adapter("gone", a)


def test_promotion_serves_the_newest_and_rollback_returns_to_the_one_before(tmp_path, bases):
    a, b = bases
    registry.register_adapter("v1", a, lora(tmp_path, b"1"))
    registry.register_adapter("v2", a, lora(tmp_path, b"2"))
    assert registry.promoted(a.identity) is None
    registry.promote("v1", a)
    registry.promote("v2", a)
    assert registry.promoted(a.identity) == "v2" and registry.promoted(b.identity) is None
    with pytest.raises(ModelError, match="trained for"):
        registry.promote("v1", b)  # never onto another base
    assert registry.rollback(a) == "v1"
    assert registry.rollback(a) is None  # the bare base serves again
    with pytest.raises(ModelError, match="no adapter is promoted"):
        registry.rollback(a)


def test_a_corrupt_promotions_file_means_no_adapter(tmp_path, bases, caplog):
    a, _ = bases
    registry.adapters_dir().mkdir(parents=True)
    (registry.adapters_dir() / registry.PROMOTED).write_text("{broken")
    with caplog.at_level(logging.WARNING):
        assert registry.promoted(a.identity) is None
    assert "ignoring" in caplog.text


def test_the_cli_refuses_an_adapter_that_did_worse_held_out(tmp_path, bases, monkeypatch, capsys):
    from training import models
    a, _ = bases
    monkeypatch.setattr(models, "resolve", lambda name: a)
    metrics = {"before": {"loss": 1.0, "p_eot": 0.1}, "after": {"loss": 1.2, "p_eot": 0.5}}
    registry.register_adapter("worse", a, lora(tmp_path, b"w"), {"metrics": metrics})
    registry.register_adapter("better", a, lora(tmp_path, b"b"), {"metrics": {**metrics, "after": {
        "loss": 0.6, "p_eot": 0.7}}})
    assert models.main(["promote", "worse"]) == 1
    assert "not below the base model's 1.000" in capsys.readouterr().err
    assert registry.promoted(a.identity) is None
    assert models.main(["promote", "better"]) == 0 and registry.promoted(a.identity) == "better"
    assert models.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "* better@" in out and "held-out loss 1.000 -> 0.600" in out
    assert "online trial of better against no adapter: running: 10% of model calls" in out
    assert models.main(["rollback"]) == 0 and registry.promoted(a.identity) is None
    assert models.main(["promote", "worse", "--force"]) == 0 and registry.promoted(a.identity) == "worse"
    # a lower loss is not enough when the server's own pipeline answered the held-out tasks worse
    served = {"n": 40, "serving": {"exact": 0.3, "es": 0.6}, "adapter": {"exact": 0.3, "es": 0.55}}
    registry.register_adapter("served-worse", a, lora(tmp_path, b"s"), {"metrics": {**metrics, "after": {
        "loss": 0.6, "p_eot": 0.7}, "serving": served}})
    assert models.main(["promote", "served-worse"]) == 1
    assert "edit similarity 0.550 is below 0.600, what serves now" in capsys.readouterr().err


@pytest.fixture
def shipping(tmp_path, bases, monkeypatch):
    """base-a's model manifest names an adapter shipped in a models/adapters/ of its own."""
    from server.models import Manifest
    a, _ = bases
    monkeypatch.setattr(registry, "load_manifests", lambda: {"base-a": Manifest(
        "base-a", "a.gguf", None, a.sha256, "Apache-2.0", "qwen", 32768, adapter="fim-default")})
    return registry.register_adapter("fim-default", a, lora(tmp_path, b"shipped"), root=registry.SHIPPED_DIR)


def test_the_shipped_adapter_serves_until_the_user_promotes_one_and_again_after_rollback(tmp_path, bases, shipping):
    a, b = bases
    assert registry.list_adapters(a.identity) == [shipping] and registry.list_adapters(b.identity) == []
    assert registry.promoted(a.identity) == "fim-default" and registry.promoted(b.identity) is None
    assert registry.resolve_adapter("fim-default", a) == shipping
    from training import models
    assert models.about(shipping)["name"] == "fim-default"  # its manifest, read beside it (training.models list)
    with pytest.raises(ModelError, match="an adapter Ghostline ships"):
        registry.register_adapter("fim-default", a, lora(tmp_path, b"mine"))
    registry.register_adapter("mine", a, lora(tmp_path, b"mine"))
    registry.promote("mine", a)
    assert registry.promoted(a.identity) == "mine"
    from server import trial
    assert trial.load(a.identity).old == "fim-default"  # confirmed online against the shipped one
    assert registry.rollback(a) == "fim-default"
    with pytest.raises(ModelError, match=r"promoted for base-a@aaaaaaaa \(the shipped fim-default serves\)"):
        registry.rollback(a)


def test_a_corrupt_adapter_is_refused_by_its_sha256(tmp_path, bases, shipping):
    a, _ = bases
    shipping.path.write_bytes(b"flipped bits")
    with pytest.raises(ModelError, match=r"fim-default.*is corrupt.*check out models/adapters"):
        registry.resolve_adapter("fim-default", a)
    mine = registry.register_adapter("mine", a, lora(tmp_path))
    mine.path.write_bytes(b"truncated")  # e.g. a full disk while it was copied
    with pytest.raises(ModelError, match=r"mine.*is corrupt.*rollback"):
        registry.resolve_adapter("mine", a)
