"""Teach the model to infill this user's code and to stop: a LoRA adapter trained on fill-in-the-middle
examples, exported as GGUF for llama.cpp on the same base weights.

    python -m training.finetune                                  # the corpus train split, 20 min on 2 cores
    python -m training.finetune --workspace ~/src/app            # the user's own code
    python -m training.finetune --workspace ~/src/app --db ~/.local/share/ghostline/telemetry.sqlite3
    python -m training.finetune --steps 20 --name quick          # a short try
    python -m training.finetune --method pg --db ~/.local/share/ghostline/telemetry.sqlite3   # from outcomes
    python -m training.finetune --method kto --db ~/.local/share/ghostline/telemetry.sqlite3  # the same, as KTO
    python -m training.finetune --method dpo --workspace ~/src/app   # away from the model's own mistakes
    torchrun --nproc_per_node 4 -m training.finetune --steps 500     # several GPUs or machines (also accelerate launch)

The shipped model is an instruct model: it infills but does not end the middle (it carries on and repeats
the suffix, which post-processing then cuts). The loss is on the middle and its end-of-text only, so the
adapter learns both what to write and where to stop. `--method sft` (default) imitates the middles;
`--method pg` is an offline policy gradient on the user's outcomes: each shown completion's likelihood is
pushed up or down by its reward over the probability it was shown (training.fim_examples.from_outcomes); a
rejected completion stops being pushed once it is already unlikely (mean loss above `unlikely`).
Training goes on from the adapter serving now (the one Ghostline ships, until the user promotes their own) when
it has the same rank and alpha (`--start none`: from the bare base).
The preference methods keep the model near where it started (the reference: the model as training starts, so
the bare base for a new adapter, or the adapter training goes on from, Zeta's SFT-then-DPO order):
`--method kto` takes the same outcomes as desirable (accepted) or not, unpaired, as KTO does;
`--method dpo` takes pairs with one prompt, the code that is there against what the serving pipeline answers
there when it is wrong (training.fim_examples.mistakes), so the model learns away from its own mistakes, with
the chosen middle's cross-entropy added (RPO, trl's `rpo_alpha`) so the margin does not grow by pushing both
sides down. Both losses are written out below, as the papers (and trl) define them, inside the same loop.

Reads top to bottom: config, load (base weights dequantized from the GGUF in use, examples), train
(resumable: a checkpoint every few steps), evaluate (held-out loss and p(end-of-text) after the middle,
before and after), export (adapter.gguf + a manifest into the adapter registry, a loss-curve PNG and an HTML
report).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from server.bake import read_adapter
from server.dirs import data_dir
from server.models import ModelError, resolve
from server.options import Options
from server.registry import Adapter, promote, promoted, register_adapter, resolve_adapter
from server.templates import get_template
from training import fim_examples
from training.corpus import split_dir
from training.fim_examples import Example
from training.models import worse_than_base

# --- config (defaults) --------------------------------------------------------------------------------------
METHODS = ("sft", "pg", "kto", "dpo")


@dataclass
class Config:
    method: str = "sft"  # sft: imitate the middles; pg, kto: learn from outcomes (need --db); dpo: from mistakes
    model: str | None = None  # a manifest name or .gguf path; default: the default model
    name: str = "fim-sft"  # the adapter's name in the registry
    workspace: str | None = None  # code to learn from; default: the corpus train split
    db: str | None = None  # a telemetry database: accepted completions (training level) join the examples
    examples: int = 1500  # per language, before de-duplication
    describes: int = 0  # per language: more examples, the body of a function its docstring or comment describes
    holdout_eval: int = 48  # held-out examples scored before and after
    serve_eval: int = 40  # held-out tasks answered by the server's pipeline as it serves now and with the adapter
    steps: int = 240  # optimizer steps (one example each, times grad_accum)
    grad_accum: int = 1
    lr: float = 2e-4
    warmup: int = 10
    rank: int = 4  # the shipped adapter's (models/adapters/): rank 16 measured no better (docs/benchmarks.md)
    alpha: float = 8.0
    # the adapter to go on from: "serving" (the one serving now, the shipped one until yours is promoted, when its
    # rank and alpha are these; for kto and dpo it is also their reference), "none", or a name
    start: str = "serving"
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    max_len: int = 1024  # tokens, prompt + middle; longer examples are skipped
    unlikely: float = 4.0  # pg: a rejected completion with a mean loss above this (nats) is left alone
    beta: float = 0.1  # kto, dpo: how far from the reference (the model as training starts) the log-ratios may pull
    # dpo: weight of the chosen middle's own cross-entropy beside the preference (RPO). Without it the margin grows
    # by pushing both sides down: 100 steps on 149 pairs took held-out loss 1.94 -> 7.26 (docs/benchmarks.md).
    rpo: float = 1.0
    pairs: int = 200  # dpo: train-split tasks answered by the serving pipeline to find its mistakes
    checkpoint_every: int = 20
    seed: int = 0
    promote: bool = False  # serve the adapter when it did better than the base on the held-out examples
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)


def run_dir(name: str) -> Path:
    return data_dir() / "finetune" / name


# --- load -------------------------------------------------------------------------------------------------
def load_base(gguf: Path):
    """transformers model + tokenizer dequantized from the GGUF llama.cpp serves (what the adapter is applied to)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    return model, tok


def with_lora(model, cfg: Config):
    from peft import LoraConfig, get_peft_model
    return get_peft_model(model, LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, target_modules=list(cfg.targets),
                                            lora_dropout=0.0, bias="none"))


def encode(ex: Example, tok, eot_id: int, max_len: int) -> dict | None:
    """Token ids of prompt + middle + end-of-text, and how many at the end carry the loss."""
    prompt = tok(ex.prompt, add_special_tokens=False).input_ids
    middle = tok(ex.middle, add_special_tokens=False).input_ids + [eot_id]
    if len(prompt) + len(middle) > max_len:
        return None
    return {"ids": prompt + middle, "n_target": len(middle), "weight": ex.weight}


# --- train ------------------------------------------------------------------------------------------------
def item_loss(model, item: dict):
    """Mean cross-entropy over the middle and its end-of-text, and p(end-of-text) after the true middle.
    Logits are computed for the target positions only (logits_to_keep): the 151k-entry head is most of the
    cost otherwise."""
    import torch
    ids = torch.tensor([item["ids"]], device=next(model.parameters()).device)
    k = item["n_target"]
    logits = model(input_ids=ids, logits_to_keep=k + 1).logits[0, :-1].float()
    targets = ids[0, -k:]
    loss = torch.nn.functional.cross_entropy(logits, targets)
    p_eot = torch.softmax(logits[-1].detach(), -1)[targets[-1]].item()
    return loss, p_eot


def seq_logprob(model, item: dict):
    """log p(middle + end-of-text | prompt), summed over the target tokens."""
    loss, _ = item_loss(model, item)
    return -loss * item["n_target"]


def set_references(model, items: list[dict]) -> None:
    """Each preference item's seq_logprob under the model as training starts: its reference. That is the bare
    base for a new adapter (LoRA starts as the identity) and the starting adapter when training goes on from one."""
    import torch
    model.eval()
    with torch.no_grad():
        for item in tqdm(items, desc="references", file=sys.stderr):
            for side in (item["chosen"], item["rejected"]) if "chosen" in item else (item,):
                if "ref" not in side:
                    side["ref"] = seq_logprob(model, side).item()


def objective(model, item: dict, cfg: Config, kl: list[float]):
    """The loss of one item under cfg.method (None: the item is left alone this step). `kl` holds KTO's
    recent policy/reference log-ratios: their mean, clamped at 0, is its reference point."""
    import torch.nn.functional as F
    if cfg.method == "dpo":  # -log sigmoid(beta * ((chosen ratio) - (rejected ratio))) + rpo * NLL(chosen)
        c, r = item["chosen"], item["rejected"]
        nll, _ = item_loss(model, c)
        chosen = -nll * c["n_target"]
        margin = (chosen - c["ref"]) - (seq_logprob(model, r) - r["ref"])
        return -F.logsigmoid(cfg.beta * margin) + cfg.rpo * nll
    if cfg.method == "kto":  # 1 - sigmoid(beta * (ratio - z0)) when desirable, (z0 - ratio) when not
        ratio = seq_logprob(model, item) - item["ref"]
        z0 = max(0.0, float(np.mean(kl[-32:]))) if kl else 0.0
        kl.append(ratio.item())
        sign = 1.0 if item["weight"] > 0 else -1.0
        return (1 - F.sigmoid(cfg.beta * sign * (ratio - z0))) * abs(item["weight"])
    loss, _ = item_loss(model, item)
    if item["weight"] < 0 and loss.item() > cfg.unlikely:
        return None  # already unlikely: pushing further down only damages the model
    return loss * item["weight"]


def evaluate(model, items: list[dict]) -> dict:
    import torch
    losses, p_eot = [], []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for item in tqdm(items, desc="held-out", file=sys.stderr, leave=False):
            loss, p = item_loss(model, item)
            losses.append(loss.item())
            p_eot.append(p)
    model.train(was_training)
    return {"loss": float(np.mean(losses)) if losses else None, "p_eot": float(np.mean(p_eot)) if p_eot else None,
            "n": len(items)}


def lr_at(step: int, cfg: Config) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def world() -> tuple[int, int]:
    """(processes, this one's rank): (1, 0) unless launched by torchrun / accelerate launch (torch.distributed)."""
    import torch.distributed as dist
    return (dist.get_world_size(), dist.get_rank()) if dist.is_available() and dist.is_initialized() else (1, 0)


def train(model, items: list[dict], cfg: Config, ckpt: Path | None = None) -> list[float]:
    """cfg.steps optimizer steps over the items (shuffled by seed, cycled); resumes from ckpt when it holds a
    run of the same config. Under several processes each takes its own share of the items and gradients are
    averaged before every step, so all end with the same weights. Returns the loss of every step."""
    import torch
    import torch.distributed as dist
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    size, rank = world()
    order = list(range(len(items)))
    random.Random(cfg.seed).shuffle(order)
    order = order[rank::size] or order
    if cfg.method in ("kto", "dpo"):  # the items the steps will visit
        visited = {order[k % len(order)] for k in range(cfg.steps * cfg.grad_accum)}
        set_references(model, [items[i] for i in sorted(visited)])
    start, losses = 0, []
    if ckpt and ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        if state["config"] == asdict(cfg):
            model.load_state_dict(state["lora"], strict=False)
            opt.load_state_dict(state["optimizer"])
            start, losses = state["step"], state["losses"]
            print(f"resuming at step {start} from {ckpt}", file=sys.stderr)
    model.train()
    kl: list[float] = []
    bar = tqdm(range(start, cfg.steps), desc="training", file=sys.stderr, initial=start, total=cfg.steps)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        total = 0.0
        for j in range(cfg.grad_accum):
            item = items[order[(step * cfg.grad_accum + j) % len(order)]]
            loss = objective(model, item, cfg, kl)
            if loss is None:
                continue
            (loss / cfg.grad_accum).backward()
            total += loss.item() / cfg.grad_accum
        if size > 1:
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                dist.all_reduce(p.grad)
                p.grad /= size
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(total)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if ckpt and rank == 0 and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
            lora = {k: v for k, v in model.state_dict().items() if "lora_" in k}
            tmp = ckpt.with_suffix(".partial")
            torch.save({"config": asdict(cfg), "step": step + 1, "losses": losses, "lora": lora,
                        "optimizer": opt.state_dict()}, tmp)
            tmp.replace(ckpt)
    return losses


# --- export -----------------------------------------------------------------------------------------------
GGUF_NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
              "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


def lora_names(model) -> dict[str, str]:
    """peft's lora_A / lora_B state-dict keys -> llama.cpp's adapter tensor names (blk.N.attn_q.weight.lora_a)."""
    out = {}
    for key in model.state_dict():
        if "lora_" not in key:
            continue
        parts = key.split(".")
        layer = parts[parts.index("layers") + 1]
        proj = next(p for p in parts if p in GGUF_NAMES)
        out[key] = f"blk.{layer}.{GGUF_NAMES[proj]}.weight.{'lora_a' if 'lora_A' in parts else 'lora_b'}"
    return out


def lora_tensors(model) -> dict[str, np.ndarray]:
    """peft's LoRA weights under llama.cpp's adapter names, as numpy arrays."""
    state = model.state_dict()
    return {name: state[key].detach().float().cpu().numpy() for key, name in lora_names(model).items()}


def load_lora(model, path: Path, alpha: float) -> str | None:
    """Set the peft model's LoRA weights to an exported adapter's (the inverse of lora_tensors); returns why they
    do not fit (another alpha, rank or set of projections), or None once loaded."""
    import torch
    src, theirs = read_adapter(path)
    if theirs != alpha:
        return f"its alpha is {theirs:g}, not {alpha:g}"
    names, state = lora_names(model), model.state_dict()
    if set(names.values()) != set(src):
        return "it adapts other projections"
    if any(src[n].size != state[k].numel() for k, n in names.items()):
        return "its rank differs"
    model.load_state_dict({k: torch.from_numpy(src[n].reshape(state[k].shape).copy()) for k, n in names.items()},
                          strict=False)
    return None


def export_gguf(tensors: dict[str, np.ndarray], path: Path, alpha: float, arch: str = "qwen2") -> Path:
    """An adapter as llama.cpp reads it (general.type adapter, adapter.type lora, adapter.lora.alpha)."""
    import gguf
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), arch=arch)
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", float(alpha))
    for name, t in tensors.items():
        w.add_tensor(name, np.ascontiguousarray(t))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def starting_point(model, cfg: Config, base) -> str | None:
    """Load the adapter training goes on from (cfg.start) into the peft model; returns its identity, or None when
    training starts from the bare base. The serving adapter is skipped, said on stderr, when it does not fit;
    a named one that does not fit is an error."""
    name = (promoted(base.identity) if cfg.start == "serving" else cfg.start) if cfg.start != "none" else None
    if not name:
        return None
    try:
        adapter = resolve_adapter(name, base)
        why = load_lora(model, adapter.path, cfg.alpha)
    except ModelError as e:
        adapter, why = None, str(e)
    if why and cfg.start != "serving":
        raise SystemExit(f"cannot start from {name}: {why}")
    if why:
        print(f"starting from the bare base, not {name}: {why}", file=sys.stderr)
        return None
    print(f"starting from {adapter.identity}", file=sys.stderr)
    return adapter.identity


def pipeline_answers(model: str | None):
    """What the server shows at a task (the serving pipeline on the quantized base, cold and greedy)."""
    from server.engine import Engine
    from server.runtime import load_runtime
    from training.evaluate import run_pipeline
    engine = Engine(load_runtime(model, "none"))
    return lambda task: run_pipeline(engine, task)["text"]


def serving_check(model: str | None, adapter, tasks: list) -> dict:
    """The server's own pipeline (llama.cpp on the quantized base) on held-out tasks, cold and greedy, as it
    serves now (the promoted adapter, else the shipped one, else none) and with the new adapter (a registry name
    or a server.registry.Adapter): what promotion is judged on, beside the held-out loss."""
    from server.engine import Engine
    from server.runtime import PROMOTED_ADAPTER, load_runtime
    from training.evaluate import run_pipeline, score
    out = {}
    for name, lora in (("serving", PROMOTED_ADAPTER), ("adapter", adapter)):
        engine = Engine(load_runtime(model, lora))
        got = [score(t, run_pipeline(engine, t)) for t in tqdm(tasks, desc=f"serving ({name})", file=sys.stderr)]
        out[name] = {m: float(np.mean([g[m] for g in got])) if got else None for m in ("exact", "es")}
        del engine
    out["n"] = len(tasks)
    return out


def plot(losses: list[float], before: dict, after: dict, path: Path, method: str = "sft") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(losses, alpha=0.3, label="step loss")
    w = 20
    if len(losses) >= w:
        ax.plot(range(w - 1, len(losses)), np.convolve(losses, np.ones(w) / w, mode="valid"), label=f"mean of {w}")
    for res, style, name in ((before, ":", "held-out before"), (after, "--", "held-out after")):
        if res.get("loss") is not None and method == "sft":  # the same cross-entropy as the steps' only then
            ax.axhline(res["loss"], linestyle=style, color="k", label=f"{name}: {res['loss']:.3f}")
    ax.set_xlabel("step")
    ax.set_ylabel(f"{method} loss" + (" (cross-entropy, middle + end-of-text)" if method == "sft" else ""))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def html_report(report: dict, png: Path, path: Path) -> None:
    """One page a user can open: what was trained on, the before/after numbers, the loss curve."""
    import base64
    import html
    m, data, cfg = report["metrics"], report["data"], report["config"]
    rows = [("held-out loss", m["before"].get("loss"), m["after"].get("loss")),
            ("p(end-of-text) after the middle", m["before"].get("p_eot"), m["after"].get("p_eot"))]
    if s := m.get("serving"):
        rows += [(f"{name}, {s['n']} held-out tasks through the server's pipeline", s["serving"][k], s["adapter"][k])
                 for name, k in (("exact match", "exact"), ("edit similarity", "es"))]
    table = "".join(f"<tr><td>{name}</td><td>{_num(a)}</td><td>{_num(b)}</td></tr>" for name, a, b in rows)
    source = (f"{data['train_examples']} training examples from {data['root']} ({', '.join(data['kinds'])})"
              + (", with accepted completions from telemetry" if data["telemetry"] else "")
              + f"; {data['held_out_examples']} held out ({len(report['split']['held_out_paths'])} files never "
              "trained on)")
    image = (f'<p><img alt="loss curve" src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}">'
             if png.exists() else "")
    path.write_text(
        '<!doctype html><meta charset="utf-8">'
        f"<title>Ghostline adapter {html.escape(cfg['name'])}</title>"
        "<style>body{font:14px system-ui,sans-serif;max-width:52em;margin:2em auto}td,th{padding:.2em .8em;"
        "text-align:left}table{border-collapse:collapse}tr:nth-child(even){background:#f4f4f4}</style>"
        f"<h1>Adapter {html.escape(cfg['name'])}</h1>"
        f"<p>{html.escape(cfg.get('method', 'sft'))} on {html.escape(report['base'])}, {html.escape(report['date'])}, "
        f"{report['minutes']} minutes. {html.escape(source)}.</p>"
        f"<table><tr><th></th><th>before</th><th>with the adapter</th></tr>{table}</table>{image}"
        f"<p>Config: <code>{html.escape(json.dumps(cfg))}</code></p>\n")


def _num(x) -> str:
    return "-" if x is None else f"{x:.3f}"


# --- main -------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.finetune", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Config()
    ap.add_argument("--method", choices=METHODS, default=defaults.method)
    for f in ("model", "name", "workspace", "db", "examples", "describes", "holdout_eval", "serve_eval", "steps",
              "grad_accum", "lr", "rank", "alpha", "start", "max_len", "beta", "rpo", "pairs", "seed", "threads"):
        d = getattr(defaults, f)
        ap.add_argument("--" + f.replace("_", "-"), dest=f, default=d, type=type(d) if d is not None else str)
    ap.add_argument("--promote", action="store_true",
                    help="serve the adapter if it beat the base model on the held-out examples")
    cfg = Config(**vars(ap.parse_args(argv)))

    import torch
    import torch.distributed as dist
    torch.set_num_threads(cfg.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun / accelerate launch
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    _, rank = world()
    base = resolve(cfg.model)
    out = run_dir(cfg.name)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    model, tok = load_base(base.path)
    print(f"loaded {base.identity} in {time.time() - t0:.0f} s", file=sys.stderr)

    template = get_template(base.fim_template)
    eot = tok.convert_tokens_to_ids(template.stops[0])

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False).input_ids) if text else 0

    root = Path(cfg.workspace).expanduser() if cfg.workspace else split_dir("train")
    train_tasks, held_tasks = fim_examples.file_tasks(root, cfg.examples, cfg.seed, describes=cfg.describes)
    pairs: list[tuple[Example, Example]] = []
    if cfg.method in ("pg", "kto"):
        if not cfg.db:
            print(f"--method {cfg.method} learns from outcomes: give --db (a telemetry database at the training "
                  "level)", file=sys.stderr)
            return 2
        train_ex, test_ex = fim_examples.from_outcomes(Path(cfg.db).expanduser(), template, count, Options())
        test_ex = [e for e in test_ex if e.weight > 0]  # held out: how likely it finds what was accepted
    elif cfg.method == "dpo":
        asked = random.Random(cfg.seed).sample(train_tasks, min(cfg.pairs, len(train_tasks)))  # every language
        pairs = fim_examples.mistakes(tqdm(asked, desc="the pipeline's answers", file=sys.stderr),
                                      pipeline_answers(cfg.model), template, count, Options())
        train_ex = [chosen for chosen, _ in pairs]
        test_ex = fim_examples.dedupe(fim_examples.from_tasks(held_tasks, template, count, Options()))
    else:
        train_ex = fim_examples.dedupe(fim_examples.from_tasks(train_tasks, template, count, Options()))
        test_ex = fim_examples.dedupe(fim_examples.from_tasks(held_tasks, template, count, Options()))
        if cfg.db:
            more_train, more_test = fim_examples.from_telemetry(Path(cfg.db).expanduser(), template, count)
            train_ex, test_ex = train_ex + more_train, test_ex + more_test
    items = [e for e in (encode(x, tok, eot, cfg.max_len) for x in train_ex) if e]
    if pairs:
        items = [{"chosen": c, "rejected": r, "weight": 1.0} for c, r in
                 ((encode(a, tok, eot, cfg.max_len), encode(b, tok, eot, cfg.max_len)) for a, b in pairs) if c and r]
    held = [e for e in (encode(x, tok, eot, cfg.max_len) for x in test_ex) if e][:cfg.holdout_eval]
    if not items:
        print(f"no training examples under {root}", file=sys.stderr)
        return 2
    print(f"{len(items)} training examples, {len(held)} held out ({root})", file=sys.stderr)

    if torch.cuda.is_available():  # bf16 on a GPU; the adapter is exported as float32 either way
        model = model.to(device=f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}", dtype=torch.bfloat16)
    model = with_lora(model, cfg)
    start = starting_point(model, cfg, base)
    with model.disable_adapter():
        before = evaluate(model, held)
    losses = train(model, items, cfg, out / "checkpoint.pt")
    after = evaluate(model, held)
    if rank:  # the other processes trained the same weights; one writes them
        return 0
    if held:
        print(f"held-out loss {before['loss']:.3f} -> {after['loss']:.3f}, "
              f"p(end-of-text) {before['p_eot']:.3f} -> {after['p_eot']:.3f}", file=sys.stderr)

    gguf = export_gguf(lora_tensors(model), out / "adapter.gguf", cfg.alpha)
    held_paths = sorted({e.path for e in test_ex})
    report = {"config": asdict(cfg), "base": base.identity, "start": start, "date": time.strftime("%Y-%m-%d %H:%M"),
              "data": {"root": str(root), "train_examples": len(items), "held_out_examples": len(test_ex),
                       "kinds": sorted({e.kind for e in train_ex}), "telemetry": bool(cfg.db)},
              "split": {"held_out_paths": held_paths}, "metrics": {"before": before, "after": after},
              "losses": losses, "minutes": round((time.time() - t0) / 60, 1)}
    if held_tasks and cfg.serve_eval:  # the held-out files through the server's pipeline, as it serves and with it
        s = serving_check(cfg.model, Adapter(cfg.name, base.identity, gguf, ""), held_tasks[:cfg.serve_eval])
        report["metrics"]["serving"] = s
        print(f"served on {s['n']} held-out tasks: exact {s['serving']['exact']:.3f} -> {s['adapter']['exact']:.3f}, "
              f"ES {s['serving']['es']:.3f} -> {s['adapter']['es']:.3f}", file=sys.stderr)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    plot(losses, before, after, out / "loss.png", cfg.method)
    html_report(report, out / "loss.png", out / "report.html")
    adapter = register_adapter(cfg.name, base, gguf, {k: v for k, v in report.items() if k != "losses"})
    print(f"adapter {adapter.identity} -> {adapter.path}\nreport: {out / 'report.html'} ({out / 'report.json'})",
          file=sys.stderr)
    if cfg.promote:
        why = worse_than_base(report) if held else "nothing was held out to judge it on"
        if why:
            print(f"not promoted: {why}", file=sys.stderr)
            return 1
        promote(cfg.name, base)
        print(f"promoted: the server now serves {adapter.identity}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
