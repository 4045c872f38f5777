import hashlib
import os

import pytest

from server import models
from server.models import Manifest, ModelError


def test_manifests_are_complete():
    ms = models.load_manifests()
    default = [m for m in ms.values() if m.default]
    assert len(default) == 1 and default[0].name == "qwen2.5-coder-0.5b-instruct-q4_k_m"
    for m in ms.values():
        assert m.file.endswith(".gguf") and m.license and m.fim_template and m.sources
    assert default[0].size == 491_400_064 and len(default[0].sha256) == 64


def test_unknown_model_lists_known_ones():
    with pytest.raises(ModelError, match="known:"):
        models.resolve("no-such-model")


def test_missing_file_says_how_to_pull(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTLINE_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelError, match=r"python -m server\.models pull"):
        models.resolve("qwen2.5-coder-0.5b-instruct-q4_k_m")


def test_wrong_size_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTLINE_MODELS_DIR", str(tmp_path))
    (tmp_path / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").write_bytes(b"x" * 10)
    with pytest.raises(ModelError, match="expected 491400064"):
        models.resolve("qwen2.5-coder-0.5b-instruct-q4_k_m")


def only_manifest(data: bytes, tmp_path, monkeypatch) -> Manifest:
    """A models folder in tmp_path whose only manifest, "t", describes `data` as t.gguf."""
    monkeypatch.setenv("GHOSTLINE_MODELS_DIR", str(tmp_path))
    m = Manifest("t", "t.gguf", len(data), hashlib.sha256(data).hexdigest(), "MIT", "qwen", 2048)
    monkeypatch.setattr(models, "load_manifests", lambda: {"t": m})
    return m


def test_a_changed_file_is_hashed_again_and_refused(tmp_path, monkeypatch):
    good = b"GGUF weights"
    m = only_manifest(good, tmp_path, monkeypatch)
    (tmp_path / "t.gguf").write_bytes(good)
    assert models.resolve("t").identity == f"t@{m.sha256[:8]}"
    before = (tmp_path / "t.gguf").stat().st_mtime_ns
    (tmp_path / "t.gguf").write_bytes(b"GGUF weightz")  # same size, other bytes
    os.utime(tmp_path / "t.gguf", ns=(before, before + 10**9))  # a later mtime even on a coarse clock
    with pytest.raises(ModelError, match=r"corrupt: sha256 .* expected " + m.sha256):
        models.resolve("t")


def test_an_assembled_model_is_not_hashed_again(tmp_path, monkeypatch):
    data = b"GGUF assembled"
    m = only_manifest(data, tmp_path, monkeypatch)
    (tmp_path / "t.gguf.partial").write_bytes(data)
    models._finish(tmp_path / "t.gguf.partial", tmp_path / "t.gguf", m, m.sha256)
    monkeypatch.setattr(models, "sha256_file", lambda path: pytest.fail("hashed again"))
    assert models.resolve("t").sha256 == m.sha256


def test_wrong_hash_refused_with_expected_and_actual(tmp_path):
    data = b"not the model"
    m = Manifest("t", "t.gguf", len(data), "0" * 64, "MIT", "qwen", 2048)
    tmp = tmp_path / "t.gguf.partial"
    tmp.write_bytes(data)
    with pytest.raises(ModelError) as e:
        models._finish(tmp, tmp_path / "t.gguf", m, hashlib.sha256(data).hexdigest())
    assert "0" * 64 in str(e.value) and hashlib.sha256(data).hexdigest() in str(e.value)
    assert not (tmp_path / "t.gguf").exists() and not tmp.exists()


def test_local_gguf_path(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTLINE_MODELS_DIR", str(tmp_path / "cache"))
    p = tmp_path / "starcoder2-3b.Q4.gguf"
    p.write_bytes(b"GGUF")
    r = models.resolve(str(p))
    assert r.path == p and r.fim_template == "starcoder2"
    assert r.identity == "starcoder2-3b.Q4@" + hashlib.sha256(b"GGUF").hexdigest()[:8]
    monkeypatch.setattr(models, "sha256_file", lambda path: pytest.fail("hashed again"))
    assert models.resolve(str(p)).identity == r.identity  # remembered while the file is unchanged
    p.write_bytes(b"GGUF2")
    monkeypatch.setattr(models, "sha256_file", lambda path: "ab" * 32)
    assert models.resolve(str(p)).identity == "starcoder2-3b.Q4@abababab"
    with pytest.raises(ModelError, match="not found"):
        models.resolve(str(tmp_path / "missing.gguf"))


def test_hub_source_fails_clearly_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("GHOSTLINE_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="internet"):
        models.pull("qwen2.5-coder-0.5b-q4_k_m")


@pytest.mark.model
def test_cli_list_and_verify(capsys):
    assert models.main(["list"]) == 0
    assert "qwen2.5-coder-0.5b-instruct-q4_k_m" in capsys.readouterr().out
    assert models.main(["verify"]) == 0
    assert "sha256=1d9614638d18" in capsys.readouterr().out


def test_replace_text_leaves_the_old_text_or_the_new_and_no_temporary_file(tmp_path):
    from server.dirs import replace_text
    path = tmp_path / "deep" / "state.json"
    replace_text(path, "old\n")
    replace_text(path, "new\n")
    assert path.read_text() == "new\n" and [p.name for p in path.parent.iterdir()] == ["state.json"]
    with pytest.raises(IsADirectoryError):
        replace_text(tmp_path / "deep", "x")  # a write that fails leaves nothing behind
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]
