"""A tuned model for serving elsewhere: the base GGUF with a LoRA adapter merged into its weights (by default laid
out as server.bake bakes it; or quantized again throughout by llama.cpp), and an Ollama Modelfile that prompts it
for fill-in-the-middle.

    python -m training.models export NAME [--out DIR] [--quant baked|q4_k_m|q5_k_m|q8_0|f16]

Merging also removes the adapter's run-time cost in llama.cpp (server.bake does it in place for the shipped adapter).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from server.bake import adapted, copy_fields, dequantized, merge_into, read_adapter
from server.models import MANIFEST_DIR, ModelError, ResolvedModel
from server.registry import ADAPTER_FILE, SHIPPED_DIR, Adapter, register_adapter

QUANTS = {"q4_k_m": 15, "q5_k_m": 17, "q8_0": 7, "f16": 1}  # llama.cpp's LLAMA_FTYPE_MOSTLY_* values
# The default: the base's own quantization, with the adapted matrices in 8 bits (server.bake, what the server
# serves). Quantized again to q4_k_m throughout, most of an adapter's small change rounds back onto the old grid.
BAKED = "baked"


def merged_f16(base: Path, adapter: Path, out: Path) -> Path:
    """Every tensor of `base` as float16 (float32 for 1-D ones), with the adapter merged in (server.bake.adapted):
    the input llama.cpp's quantizer expects."""
    import gguf
    reader = gguf.GGUFReader(str(base))
    w = gguf.GGUFWriter(str(out), arch=reader.fields["general.architecture"].contents())
    copy_fields(reader, w, skip=("general.file_type",))
    w.add_key_value("general.file_type", QUANTS["f16"], gguf.GGUFValueType.UINT32)
    for t, x in adapted(reader, adapter):
        x = dequantized(t) if x is None else x
        w.add_tensor(t.name, x.astype(np.float16 if x.ndim > 1 else np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def quantize(src: Path, dest: Path, quant: str) -> Path:
    import llama_cpp
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANTS[quant]
    params.nthread = 0
    if llama_cpp.llama_model_quantize(str(src).encode(), str(dest).encode(), params) != 0:
        raise RuntimeError(f"llama.cpp could not quantize {src}")
    return dest


def modelfile(gguf_name: str, stops: tuple[str, ...], prefix: str, suffix: str, middle: str) -> str:
    """Ollama: the FIM prompt when a suffix is given (its /api/generate `suffix`), greedy, FIM stop tokens."""
    lines = [f"FROM ./{gguf_name}",
             'TEMPLATE """{{- if .Suffix }}' + prefix + "{{ .Prompt }}" + suffix + "{{ .Suffix }}" + middle +
             '{{- else }}{{ .Prompt }}{{- end }}"""',
             "PARAMETER temperature 0"]
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    return "\n".join(lines) + "\n"


def export(base, adapter, out_dir: Path, quant: str = BAKED) -> tuple[Path, Path]:
    """(merged GGUF, Modelfile) in out_dir for a server.models.ResolvedModel and a server.registry.Adapter."""
    from server.templates import get_template
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / f"{base.name}+{adapter.name}-{quant}.gguf"
    if quant == BAKED:
        merge_into(base.path, adapter.path, dest)
    elif quant == "f16":
        merged_f16(base.path, adapter.path, dest)
    else:
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            quantize(merged_f16(base.path, adapter.path, Path(tmp) / "merged-f16.gguf"), dest, quant)
    t = get_template(base.fim_template)
    mf = out_dir / "Modelfile"
    mf.write_text(modelfile(dest.name, t.stops, t.prefix, t.suffix, t.middle))
    return dest, mf


def half(adapter: Path, out: Path) -> Path:
    """The adapter with its matrices stored as float16: half the bytes, for the one that ships in git."""
    from training.finetune import export_gguf
    tensors, alpha = read_adapter(adapter)
    return export_gguf({name: t.astype(np.float16) for name, t in tensors.items()}, out, alpha)


def ship(adapter: Adapter, base: ResolvedModel) -> Adapter:
    """Make `adapter` the one a fresh install serves on `base`: float16 into models/adapters/NAME/ with its
    training manifest, named as `adapter` in the base's model manifest (models/NAME.json). For developers: the
    result goes into git."""
    manifest = MANIFEST_DIR / f"{base.name}.json"
    if base.manifest is None or not manifest.is_file():
        raise ModelError(f"{base.name} has no manifest in {MANIFEST_DIR}: only a listed model ships an adapter")
    from training.models import about
    with tempfile.TemporaryDirectory() as tmp:
        shipped = register_adapter(adapter.name, base, half(adapter.path, Path(tmp) / ADAPTER_FILE), about(adapter),
                                   root=SHIPPED_DIR)
    d = json.loads(manifest.read_text())
    d["adapter"] = adapter.name
    manifest.write_text(json.dumps(d, indent=2) + "\n")
    return shipped
