"""The adapters trained for the installed models, and which one serves.

    python -m training.models list              # every adapter, its base, held-out metrics; * marks what serves
    python -m training.models promote NAME      # serve NAME (refused when it did worse than its base held out)
    python -m training.models rollback          # serve the one promoted before (else the shipped one, or none)
    python -m training.models export NAME       # merged, quantized GGUF + Ollama Modelfile, to serve elsewhere
    python -m training.models ship NAME         # (developers) NAME becomes the adapter shipped for its base

A running server swaps to the promoted adapter without a restart (it watches the registry). A promotion is
then confirmed online (server.trial): while telemetry is on, a share of model calls is served by the version
promoted before it, and the one the user's accepts say is worse goes, by itself.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from server import trial
from server.models import ModelError, resolve
from server.registry import (
    ADAPTER_MANIFEST,
    Adapter,
    list_adapters,
    promote,
    promoted,
    resolve_adapter,
    rollback,
)


def about(a: Adapter) -> dict:
    """The adapter's manifest (what training recorded), beside its file: in the registry or shipped."""
    try:
        return json.loads((a.path.parent / ADAPTER_MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def worse_than_base(manifest: dict) -> str | None:
    """Why the adapter did worse on its held-out examples than its base (loss under transformers) or than what
    serves now (edit similarity through the server's pipeline, when measured), or None. An adapter without
    held-out metrics is not judged here (it was not written by training.finetune)."""
    m = manifest.get("metrics") or {}
    before, after = m.get("before") or {}, m.get("after") or {}
    if before.get("loss") is None or after.get("loss") is None:
        return None
    if after["loss"] >= before["loss"]:
        return f"held-out loss {after['loss']:.3f} is not below the base model's {before['loss']:.3f}"
    served = m.get("serving") or {}
    now, tuned = served.get("serving") or {}, served.get("adapter") or {}
    if now.get("es") is not None and tuned.get("es") is not None and tuned["es"] < now["es"]:
        return (f"served on {served.get('n')} held-out tasks, its edit similarity {tuned['es']:.3f} is below "
                f"{now['es']:.3f}, what serves now")
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.models", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="the base model (default: the default model)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    p = sub.add_parser("promote")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="promote even when it did worse held out")
    sub.add_parser("rollback")
    e = sub.add_parser("export")
    e.add_argument("name")
    e.add_argument("--out", type=Path, default=None, help="folder (default: ./NAME-export)")
    e.add_argument("--quant", default="baked",
                   help="baked (default: the base's quantization, adapted matrices in 8 bits), q4_k_m, q5_k_m, q8_0 "
                        "or f16")
    sub.add_parser("ship").add_argument("name")
    args = ap.parse_args(argv)
    try:
        base = resolve(args.model)
        if args.cmd == "list":
            serving = promoted(base.identity)
            for a in list_adapters():
                m = about(a).get("metrics") or {}
                before, after = m.get("before") or {}, m.get("after") or {}
                held = (f"held-out loss {before['loss']:.3f} -> {after['loss']:.3f}, p(end-of-text) "
                        f"{before['p_eot']:.3f} -> {after['p_eot']:.3f}" if before.get("loss") and after.get("loss")
                        else "no held-out metrics")
                mark = "*" if a.base == base.identity and a.name == serving else " "
                print(f"{mark} {a.identity:32s} on {a.base}  {held}")
            print(f"serving on {base.identity}: {serving or 'no adapter'}")
            if t := trial.load(base.identity):
                state = t.ended or f"running: {t.share:.0%} of model calls served by {t.old or 'no adapter'}"
                print(f"online trial of {t.new} against {t.old or 'no adapter'}: {state}\n  {t.describe()}")
        elif args.cmd == "promote":
            a = next((x for x in list_adapters() if x.name == args.name), None)
            why = worse_than_base(about(a)) if a else None
            if why and not args.force:
                print(f"not promoted: {why} (--force to promote anyway)", file=sys.stderr)
                return 1
            print(f"serving {promote(args.name, base).identity} on {base.identity}")
        elif args.cmd == "export":
            from training.export import BAKED, QUANTS, export
            if args.quant not in (BAKED, *QUANTS):
                print(f"error: --quant takes one of {', '.join((BAKED, *QUANTS))}", file=sys.stderr)
                return 2
            gguf, modelfile = export(base, resolve_adapter(args.name, base), args.out or Path(f"{args.name}-export"),
                                     args.quant)
            print(f"wrote {gguf}\nwrote {modelfile} (ollama create NAME -f {modelfile})")
        elif args.cmd == "ship":
            from training.export import ship
            a = ship(resolve_adapter(args.name, base), base)
            print(f"shipped {a.identity} ({a.path.stat().st_size / 1e6:.1f} MB) for {base.identity}: "
                  f"commit {a.path.parent} and the model manifest")
        else:
            print(f"serving {rollback(base) or 'no adapter'} on {base.identity}")
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
