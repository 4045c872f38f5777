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
