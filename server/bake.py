"""An adapter baked into its base model's weights: a copy of the base GGUF where every matrix the adapter adapts
holds W + (alpha / r) * B @ A, quantized again by ggml's quantizer to 8 bits (stored_as), and everything else is
byte for byte the base's. Serving it costs nothing per token (llama.cpp applies a run-time adapter's matrices
on every token: the shipped one made a cold request 7% slower than the bare model).

`python -m server.models pull` bakes the adapter shipped for the model it provisions, into
`<models dir>/baked/`, with a JSON beside it naming the files it was made from; the runtime loads the baked file
instead of base + adapter only when both still match (server.runtime.load_runtime).
"""
from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .dirs import models_dir, replace_text
from .models import ModelError, ResolvedModel, cached_sha256, remember_sha256, sha256_file
from .registry import Adapter, resolve_adapter, shipped

log = logging.getLogger(__name__)

FORMAT = 3  # how a baked file is made (recorded beside it): one made another way is baked again


def read_adapter(path: Path) -> tuple[dict[str, np.ndarray], float]:
    """A LoRA adapter GGUF (training.finetune.export_gguf's, or llama.cpp's converter's): its tensors as float32
    by name, and its alpha."""
    import gguf
    reader = gguf.GGUFReader(str(path))
    return ({t.name: np.asarray(t.data, dtype=np.float32) for t in reader.tensors},
            float(reader.fields["adapter.lora.alpha"].contents()))


def dequantized(t) -> np.ndarray:
    """A tensor of a gguf.GGUFReader as float32, in numpy's (rows, row length) order."""
    import gguf
    return gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape([int(d) for d in reversed(t.shape)])


def adapted(base, adapter: Path) -> Iterator[tuple[Any, np.ndarray | None]]:
    """Each tensor of `base` (a gguf.GGUFReader) with its float32 weights plus (alpha / r) * B @ A where the
    adapter has that pair, else None."""
    lora, alpha = read_adapter(adapter)
    for t in tqdm(base.tensors, desc="merging", leave=False, file=sys.stderr):
        a, b = lora.get(f"{t.name}.lora_a"), lora.get(f"{t.name}.lora_b")
        yield t, None if a is None or b is None else dequantized(t) + (alpha / a.shape[0]) * (b @ a)


def copy_fields(reader, writer, skip: tuple[str, ...] = ()) -> None:
    """Every metadata field of one GGUF into a writer (but the architecture, which the writer was made with)."""
    import gguf
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF.") or field.name in skip:
            continue
        sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), field.types[0], sub_type=sub)


def _ggml_quantize():
    """ggml's quantize_chunk from the llama.cpp build llama-cpp-python carries: the quantizer llama.cpp uses."""
    import ctypes

    from llama_cpp import _ctypes_extensions, _ggml
    f = _ctypes_extensions.load_shared_library("ggml-base", _ggml.libggml_base_path).ggml_quantize_chunk
    f.restype = ctypes.c_size_t
    f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                  ctypes.c_void_p]
    return f


def requantize(x: np.ndarray, qtype, quantize_chunk) -> np.ndarray:
    """Rows of float32 weights as `qtype` (a gguf.GGMLQuantizationType): the bytes a GGUF stores."""
    import gguf
    if qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
        return x.astype(np.float32 if qtype == gguf.GGMLQuantizationType.F32 else np.float16)
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(gguf.quants.quant_shape_to_byte_shape(x.shape, qtype), dtype=np.uint8)
    written = quantize_chunk(int(qtype), x.ctypes.data, out.ctypes.data, 0, x.shape[0], x.shape[1], None)
    if written != out.size:
        raise ModelError(f"ggml wrote {written} bytes quantizing to {qtype.name}, expected {out.size}")
    return out


def stored_as(qtype, row: int):
    """The type an adapted matrix is stored as: 8 bits (Q8_0) unless its own type is finer. Quantized again at its
    own 4-6 bits, most of the adapter's small change rounds back onto the old grid: the shipped adapter's next-token
    distributions (KL from base + adapter at run time) were 0.046 away that way, 0.004 in Q8_0, 0.108 for the bare
    model; and Q8_0 evaluates prompts no slower than Q5_0 on AVX2."""
    import gguf
    q = gguf.GGMLQuantizationType
    if qtype in (q.F32, q.F16, q.BF16, q.Q8_0):
        return qtype
    return q.Q8_0 if row % gguf.GGML_QUANT_SIZES[q.Q8_0][0] == 0 else q.F16


def merge_into(base: Path, adapter: Path, out: Path) -> Path:
    """`base` with `adapter` merged in: each adapted matrix quantized again by ggml (stored_as), every other tensor
    and every metadata field copied as it is."""
    import gguf
    reader = gguf.GGUFReader(str(base))
    quantize_chunk = _ggml_quantize()
    writer = gguf.GGUFWriter(str(out), arch=reader.fields["general.architecture"].contents())
    copy_fields(reader, writer)
    for t, x in adapted(reader, adapter):
        qtype = t.tensor_type if x is None else stored_as(t.tensor_type, x.shape[-1])
        data = t.data if x is None else requantize(x, qtype, quantize_chunk)
        writer.add_tensor(t.name, np.asarray(data), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def baked_path(base: ResolvedModel, adapter: Adapter) -> Path:
    return models_dir() / "baked" / f"{base.name}+{adapter.identity}.gguf"


def find(base: ResolvedModel, adapter: Adapter) -> Path | None:
    """The baked file of `adapter` on `base`, if one was made from these very files and is intact."""
    path = baked_path(base, adapter)
    try:
        made = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(made, dict) or ((made.get("base"), made.get("adapter"), made.get("format"))
                                      != (base.sha256, adapter.sha256, FORMAT)):
        return None
    if not path.is_file() or cached_sha256(path) != made.get("sha256"):
        log.warning("ignoring %s: it is not the file that was baked; `python -m server.models pull` bakes it again",
                    path)
        return None
    return path


def bake(base: ResolvedModel, adapter: Adapter) -> Path:
    """Bake `adapter` into `base` (idempotent)."""
    if (done := find(base, adapter)) is not None:
        return done
    path = baked_path(base, adapter)
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("baking %s into %s", adapter.identity, base.identity)
    partial = path.with_name(path.name + ".partial")
    try:
        merge_into(base.path, adapter.path, partial)
        sha = sha256_file(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    remember_sha256(path, sha)
    replace_text(path.with_suffix(".json"), json.dumps(
        {"base": base.sha256, "adapter": adapter.sha256, "format": FORMAT, "sha256": sha,
         "adapter_name": adapter.name}, indent=1) + "\n")
    log.info("%s ready at %s", adapter.identity, path)
    return path


def bake_promoted(base: ResolvedModel, adapter: Adapter, keep: set[str]) -> Path | None:
    """Bake an adapter being promoted (server.registry.promote), so the server serves it at full speed once its
    online trial is over, and delete the bakes on `base` of adapters whose identity is not in `keep` (each is a
    copy of the model). A bake that fails is said and leaves the adapter applied at run time."""
    for old in (models_dir() / "baked").glob(f"{base.name}+*.gguf"):
        if old.stem.removeprefix(f"{base.name}+") not in keep | {adapter.identity}:
            log.info("removing %s: its adapter is no longer served", old)
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)
    try:
        return bake(base, adapter)
    except Exception as e:  # never worth failing a promotion over: the adapter also serves unbaked
        log.warning("could not bake %s into %s (%s); it is applied at run time", adapter.identity, base.identity, e)
        return None


def bake_shipped(base: ResolvedModel) -> Path | None:
    """Bake the adapter Ghostline ships for `base`, if it ships one (server.models pull)."""
    name = shipped(base.identity)
    return bake(base, resolve_adapter(name, base)) if name else None
