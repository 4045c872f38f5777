"""Train the show/no-show filter from telemetry: both stages, evaluated, exported to ONNX, promoted only if better.

    python -m training.filter [--db PATH ...] [--name NAME] [--no-promote]
    python -m training.filter --db RUN1 --db RUN2 --ship        # the default filter in models/filter/
    python -m training.filter --online                          # what the server runs every N outcomes

Labels, per suggestion (`server.features` computed the features when it was served):
  before  every request that reached the model; 1 when it, or a suggestion continuing it (typing-through
          cache, in-flight reuse), was accepted in full or in part. "Is this model call worth making?"
  after   every answer that was shown, as the reply to its own request or through a later one that continued
          it; the same label. "Is this answer worth showing?"
Rows served by exploration weigh 1/propensity (inverse propensity weighting); rows a filter rejected without
exploring have no label and are left out.
Held out: the newest `HOLDOUT` share of rows (time order: the filter is judged on what comes next). The
thresholds for `ghostline.filterAggressiveness` come from the sweep on the training rows, each scored by a model
fit without it (five contiguous folds): the highest score that still keeps `KEEP[stage][level]` of the accepted
characters. The L2 strength is chosen by cross-validated log loss on the training rows, and a stage whose held-out
log loss is no better than predicting the accept rate is left out. A new filter is promoted only if it scores
better (log loss summed over the held-out rows of both stages) than the one serving now.
`--online` (the server's background update) continues the serving filter: it starts from its coefficients (or
from zero when none serves) and takes a few passes of stochastic gradient descent over the user's rows, so a few
hundred outcomes move it without undoing what it knew; it is promoted only if it also beats the shipped default
(when there is one) on the held-out rows, so an update never serves something worse than what Ghostline ships.
"""
from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np

from server.features import AFTER_NAMES, BEFORE_NAMES, FEATURE_VERSION, SAME_SINCE, vectorize
from server.filter import OnnxStage
from server.filter_files import MANIFEST, SHIPPED, FilterError, current_folder, filters_dir, load_filter, promote
from server.telemetry import default_db_path, open_snapshot, suggestions

# --- config -------------------------------------------------------------------------------------
HOLDOUT = 0.25  # newest share of rows kept out of training
CS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # inverse L2 strengths tried (cross-validated log loss)
C_ONLINE = 0.1  # the L2 strength of an online update's SGD (in the same units)
# Share of accepted characters each level keeps at each stage (on the training rows, scored out of fold; the two
# stages together keep about the product: medium about 95%, the simulator's bar for a filter that costs the user
# next to nothing they would have taken).
KEEP = {"before": {"low": 0.995, "medium": 0.97, "high": 0.90},
        "after": {"low": 0.995, "medium": 0.98, "high": 0.95}}
# The simulator's typing rhythm is not a user's (and without --real-time its clock is virtual), so a filter trained
# on simulator telemetry must not read wall-clock features; `--ship` leaves them out. A user's own filter keeps them.
CLOCK_FEATURES = ("log_since_last", "log_typing_gap", "log_idle")
MIN_ROWS = 200  # per stage; fewer and the filter stays as it is
ONLINE_PASSES = 5  # SGD epochs over the user's rows when updating the serving filter
ONLINE_STEP = 0.01
NAMES = {"before": BEFORE_NAMES, "after": AFTER_NAMES}


@dataclass
class StageData:
    x: np.ndarray
    y: np.ndarray  # 1 = accepted (itself or a continuation)
    w: np.ndarray  # inverse propensity
    chars: np.ndarray  # characters accepted (0 for a rejection)

    def take(self, rows) -> StageData:
        return StageData(self.x[rows], self.y[rows], self.w[rows], self.chars[rows])


# --- load ---------------------------------------------------------------------------------------
def load_rows(dbs: list[Path]) -> list[dict]:
    rows = []
    for db in dbs:
        with open_snapshot(db) as conn:
            rows += list(suggestions(conn))  # every row: cache hits carry no features but label their parents
    rows.sort(key=lambda r: r["ts"])
    return rows


class Label(NamedTuple):
    accepted: bool  # in full or in part, by itself or by a suggestion continuing it
    chars: int  # characters accepted, continuations included
    shown: bool  # it, or a suggestion continuing it, was shown


def label(rows: list[dict]) -> dict[str, Label]:
    """completion id -> its Label, counting the suggestions that continue it (typing-through cache, in-flight
    reuse)."""
    own = {r["completion_id"]: Label(bool(r["accepted"]), int(r["accepted_length"] or 0), bool(r.get("shown")))
           for r in rows}
    children: dict[str, list[str]] = {}
    for r in rows:
        if r.get("parent_id"):
            children.setdefault(r["parent_id"], []).append(r["completion_id"])
    out: dict[str, Label] = {}

    def visit(cid: str, depth: int = 0) -> Label:
        if cid not in out:
            acc, chars, shown = own.get(cid, Label(False, 0, False))
            for c in children.get(cid, ()) if depth < 50 else ():
                a, n, s = visit(c, depth + 1)
                acc, chars, shown = acc or a, chars + n, shown or s
            out[cid] = Label(acc, chars, shown)
        return out[cid]
    for cid in own:
        visit(cid)
    return out


def stage_rows(rows: list[dict], labels: dict[str, Label], stage: str) -> list[dict]:
    """The rows with a label at this stage, whose features of this stage were computed as this version computes them."""
    rows = [r for r in rows if SAME_SINCE[stage] <= (r.get("feature_version") or 0) <= FEATURE_VERSION]

    def generated(r: dict) -> bool:
        if r["status"] == "filtered":  # rejected by the answer stage: it was generated
            return "mean_logprob" in r["features"]
        return r["status"] in ("model", "empty", "cancelled")
    if stage == "before":
        return [r for r in rows if generated(r)]
    # Most answers are seen through a later request (typing through them, or one that waited for the running
    # generation), not as the reply to their own request: an answer counts once it, or a continuation, was shown.
    return [r for r in rows if r["status"] == "model" and "mean_logprob" in r["features"]
            and labels[r["completion_id"]].shown]


def stage_data(rows: list[dict], labels: dict[str, Label], stage: str, names: tuple[str, ...]) -> StageData:
    keep = stage_rows(rows, labels, stage)

    def weight(r: dict) -> float:
        explored = r.get("exploration") and r.get("filter_stage") in (stage, "before")
        return 1.0 / r["propensity"] if explored and r.get("propensity") else 1.0
    return StageData(
        x=np.asarray([vectorize(r["features"], names) for r in keep], dtype=np.float32).reshape(len(keep), len(names)),
        y=np.asarray([labels[r["completion_id"]].accepted for r in keep], dtype=np.int64),
        w=np.asarray([weight(r) for r in keep], dtype=np.float64),
        chars=np.asarray([labels[r["completion_id"]].chars for r in keep], dtype=np.float64))


def split(d: StageData, holdout: float) -> tuple[StageData, StageData]:
    cut = int(len(d.y) * (1 - holdout))
    return d.take(slice(0, cut)), d.take(slice(cut, None))


# --- train --------------------------------------------------------------------------------------
def fit(d: StageData, c: float | None = None):
    """Scaled logistic regression; `c` (inverse L2 strength) is chosen by cross-validated log loss when not
    given: a hundred-odd features on a few hundred rows overfit at scikit-learn's default."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model(c: float):
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    if c is None:
        c = min(CS, key=lambda c: cv_loss(model(c), d))
    return model(c).fit(d.x, d.y, logisticregression__sample_weight=d.w)


def cv_loss(model, d: StageData, folds: int = 5) -> float:
    """Mean held-out log loss over contiguous folds (rows are in time order)."""
    from sklearn.base import clone

    losses = []
    for k, rest in trainable_folds(d, folds):
        m = clone(model).fit(d.x[rest], d.y[rest], logisticregression__sample_weight=d.w[rest])
        part = d.take(k)
        losses.append(log_loss(m.predict_proba(part.x)[:, 1], part))
    return float(np.mean(losses)) if losses else float("inf")


def trainable_folds(d: StageData, folds: int):
    """(fold, the rest) row indices over contiguous folds (rows are in time order), for each fold whose rest has
    both outcomes (a model can be fit on it)."""
    for k in np.array_split(np.arange(len(d.y)), folds):
        rest = np.setdiff1d(np.arange(len(d.y)), k)
        if len(k) and len(set(d.y[rest].tolist())) == 2:
            yield k, rest


def out_of_fold(train, d: StageData, model, folds: int = 5) -> np.ndarray:
    """Each training row scored by a model `train` fit without its contiguous fold: what the thresholds are
    chosen on, since a model's scores on its own rows keep more of the accepted characters than it will on
    new ones (one run: 92% in-sample at a threshold that kept 83% of the held-out rows' characters). A fold
    whose remaining rows have one outcome takes `model`'s scores."""
    p = model.predict_proba(d.x)[:, 1]
    for k, rest in trainable_folds(d, folds):
        p[k] = train(d.take(rest)).predict_proba(d.x[k])[:, 1]
    return p


def parameters(model) -> dict:
    """What `update` needs to continue from this model (kept in the filter's manifest)."""
    scaler, lr = model.steps[0][1], model.steps[-1][1]
    return {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist(), "coef": lr.coef_[0].tolist(),
            "intercept": float(lr.intercept_[0])}


def update(d: StageData, start: dict, c: float = C_ONLINE):
    """The serving model continued by SGD on `d` (same scaling, warm-started coefficients)."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    scaler.mean_, scaler.scale_ = np.asarray(start["mean"]), np.asarray(start["scale"])
    scaler.var_, scaler.n_features_in_, scaler.n_samples_seen_ = scaler.scale_ ** 2, len(start["mean"]), len(d.y)
    sgd = SGDClassifier(loss="log_loss", alpha=1 / (c * max(len(d.y), 1)), learning_rate="constant",
                        eta0=ONLINE_STEP, max_iter=ONLINE_PASSES, tol=None, random_state=0)
    sgd.fit(scaler.transform(d.x), d.y, coef_init=np.asarray([start["coef"]]),
            intercept_init=np.asarray([start["intercept"]]), sample_weight=d.w)
    return make_pipeline(scaler, sgd)


# --- evaluate -----------------------------------------------------------------------------------
def log_loss(p: np.ndarray, d: StageData) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.sum(d.w * (d.y * np.log(p) + (1 - d.y) * np.log(1 - p))) / max(d.w.sum(), 1e-9))


def auc(p: np.ndarray, d: StageData) -> float | None:
    if len(set(d.y.tolist())) < 2:
        return None
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(d.y, p, sample_weight=d.w))


def sweep(p: np.ndarray, d: StageData, grid: np.ndarray | None = None) -> list[dict]:
    """What each threshold keeps, inverse-propensity weighted: rows (model calls or answers shown), accepted
    rows, accepted characters, and the accept rate among what it keeps."""
    grid = np.unique(np.concatenate([[0.0], np.quantile(p, np.linspace(0, 1, 41))])) if grid is None else grid
    total, acc, chars = d.w.sum(), (d.w * d.y).sum(), (d.w * d.chars).sum()
    out = []
    for t in grid:
        k = p >= t
        kept = d.w[k].sum()
        out.append({"threshold": float(t), "kept": float(kept / total) if total else 0.0,
                    "accepted_kept": float((d.w * d.y)[k].sum() / acc) if acc else 0.0,
                    "chars_kept": float((d.w * d.chars)[k].sum() / chars) if chars else 0.0,
                    "accept_rate": float((d.w * d.y)[k].sum() / kept) if kept else 0.0})
    return out


def thresholds(p: np.ndarray, d: StageData, stage: str) -> dict[str, float]:
    """Per aggressiveness level, the highest threshold that still keeps KEEP[stage][level] of the accepted
    characters."""
    rows = sweep(p, d, np.unique(p))
    return {level: max([r["threshold"] for r in rows if r["chars_kept"] >= keep] or [0.0])
            for level, keep in KEEP[stage].items()}


def calibration(p: np.ndarray, d: StageData, bins: int = 10) -> list[dict]:
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    out = []
    for lo, hi in itertools.pairwise(edges):
        k = (p >= lo) & (p <= hi)
        if d.w[k].sum():
            out.append({"predicted": float(np.average(p[k], weights=d.w[k])),
                        "observed": float(np.average(d.y[k], weights=d.w[k])), "n": int(k.sum())})
    return out


# --- export -------------------------------------------------------------------------------------
def to_onnx(model, n_features: int) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    clf = model.steps[-1][1]
    onx = convert_sklearn(model, initial_types=[("features", FloatTensorType([None, n_features]))],
                          options={id(clf): {"zipmap": False}}, target_opset=15)
    return onx.SerializeToString()


def report_png(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    ax = axes[0]
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    for stage, r in report["stages"].items():
        cal = r["calibration"]
        ax.plot([c["predicted"] for c in cal], [c["observed"] for c in cal], marker="o", label=stage)
    ax.set(xlabel="predicted p(accept)", ylabel="observed accept share", title="calibration (held out)")
    ax.legend()
    ax = axes[1]
    for i, (stage, r) in enumerate(report["stages"].items()):
        sw, color = r["sweep"], f"C{i}"  # one color per stage, as in the calibration plot
        ax.plot([s["kept"] for s in sw], [s["chars_kept"] for s in sw], color=color,
                label=f"{stage}: accepted chars kept")
        ax.plot([s["kept"] for s in sw], [s["accept_rate"] for s in sw], color=color, ls=":",
                label=f"{stage}: accept rate")
        for level, at in r["at_thresholds_held_out"].items():  # where each aggressiveness level lands
            ax.plot(at["kept"], at["chars_kept"], marker="o", color=color)
            ax.annotate(level, (at["kept"], at["chars_kept"]), textcoords="offset points", xytext=(4, -10),
                        fontsize=7, color=color)
    ax.set(xlabel="share kept (model calls / answers shown)", title="threshold sweep (held out)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def filter_loss(folder: Path, stage: str, d: StageData, names: tuple[str, ...]) -> float | None:
    """The held-out log loss at `stage` of the filter in `folder`, None when there is none."""
    try:
        filt = load_filter(folder)
    except FilterError:
        return None
    s = filt.stages.get(stage)
    if s is None or not len(d.y):
        return None
    p = np.asarray([s.score(dict(zip(names, row.tolist(), strict=True))) for row in d.x])
    return log_loss(p, d)


def keep_stage(serving: Path, stage: str, folder: Path) -> dict | None:
    """Copy the serving filter's `stage` into `folder` unchanged; its manifest entry, or None."""
    try:
        entry = json.loads((serving / MANIFEST).read_text())["stages"][stage]
        shutil.copyfile(serving / entry["file"], folder / entry["file"])
        return entry
    except (OSError, ValueError, KeyError, TypeError):
        return None


def serving_start(folder: Path, stage: str) -> tuple[tuple[str, ...], dict] | None:
    """(feature names, parameters) of the serving filter's stage, to continue from."""
    try:
        s = json.loads((folder / MANIFEST).read_text())["stages"][stage]
        return tuple(s["features"]), s["parameters"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.filter", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", type=Path, action="append", help="telemetry database (repeatable; default: yours)")
    ap.add_argument("--name", default=None, help="the filter's name (default: filter-<date>)")
    ap.add_argument("--no-promote", action="store_true", help="write the filter, do not make it serve")
    ap.add_argument("--ship", action="store_true", help=f"write the shipped default ({SHIPPED}), no clock features")
    ap.add_argument("--online", action="store_true", help="continue the serving filter on your newest outcomes")
    ap.add_argument("--holdout", type=float, default=HOLDOUT)
    args = ap.parse_args(argv)

    # load
    dbs = args.db or [default_db_path()]
    rows = load_rows(dbs)
    labels = label(rows)
    kind = "default" if args.ship else "online" if args.online else "filter"
    name = args.name or kind + time.strftime("-%Y%m%d-%H%M%S")
    folder = SHIPPED if args.ship else filters_dir() / name
    report: dict = {"name": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "feature_version": FEATURE_VERSION,
                    "data": {"databases": [str(d) for d in dbs], "rows": len(rows)}, "stages": {}}
    manifest: dict = {"name": name, "feature_version": FEATURE_VERSION, "created": report["created"], "stages": {}}
    serving = current_folder()
    totals = {"new": 0.0, "serving": 0.0, "shipped": 0.0}
    if args.ship:  # rebuilt from scratch: a stage left out this time must not linger
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    for stage, all_names in NAMES.items():
        names = tuple(n for n in all_names if not (args.ship and n in CLOCK_FEATURES))
        start = serving_start(serving, stage) if args.online else None  # none: trained from zero
        names = start[0] if start else names
        d = stage_data(rows, labels, stage, names)
        if len(d.y) < MIN_ROWS or len(set(d.y.tolist())) < 2:
            print(f"{stage}: {len(d.y)} labelled rows ({int(d.y.sum())} accepted); need {MIN_ROWS} with both "
                  "outcomes", file=sys.stderr)
            if args.online and (kept := keep_stage(serving, stage, folder)):  # an update keeps what it cannot redo
                manifest["stages"][stage] = kept
            continue
        train, held = split(d, args.holdout)
        # train
        model = update(train, start[1]) if start else fit(train)
        # evaluate
        p_train, p_held = model.predict_proba(train.x)[:, 1], model.predict_proba(held.x)[:, 1]
        again = partial(update, start=start[1]) if start else partial(fit, c=model.steps[-1][1].C)
        thr = thresholds(out_of_fold(again, train, model), train, stage)
        held_sweep = sweep(p_held, held)
        at = {lvl: sweep(p_held, held, np.asarray([t]))[0] for lvl, t in thr.items()}
        loss = log_loss(p_held, held)
        base = log_loss(np.full(len(held.y), float(np.average(train.y, weights=train.w))), held)
        if loss >= base:  # it learned nothing that carries over to newer rows: no better than a constant
            print(f"{stage}: held-out log loss {loss:.4f} is no better than the accept rate's {base:.4f}; "
                  "this stage is left out", file=sys.stderr)
            if args.online and (kept := keep_stage(serving, stage, folder)):
                manifest["stages"][stage] = kept
            continue
        old = filter_loss(serving, stage, held, names) if folder != serving else None
        shipped = filter_loss(SHIPPED, stage, held, names) if args.online and serving != SHIPPED else None
        n = len(held.y)  # promotion compares the summed held-out loss over the stages
        totals["new"] += loss * n
        totals["serving"] += (loss if old is None else old) * n
        totals["shipped"] += (loss if shipped is None else shipped) * n
        report["stages"][stage] = {
            "rows": {"train": len(train.y), "held_out": len(held.y)},
            "accept_share": {"train": float(train.y.mean()), "held_out": float(held.y.mean())},
            "auc": {"train": auc(p_train, train), "held_out": auc(p_held, held)},
            "log_loss": {"held_out": loss, "serving": old, "shipped": shipped, "base_rate": base},
            "thresholds": thr, "at_thresholds_held_out": at,
            "calibration": calibration(p_held, held), "sweep": held_sweep}
        # export
        (folder / f"{stage}.onnx").write_bytes(to_onnx(model, len(names)))
        served = OnnxStage(folder / f"{stage}.onnx", names, thr)  # what the server will run
        gap = float(np.max(np.abs(served.scores(held.x) - p_held))) if len(held.y) else 0.0
        if gap > 1e-4:
            raise SystemExit(f"{stage}: onnxruntime and scikit-learn disagree by {gap:.2g}; not writing the filter")
        report["stages"][stage]["onnx_max_abs_diff"] = gap
        manifest["stages"][stage] = {"file": f"{stage}.onnx", "features": list(names), "thresholds": thr,
                                     "parameters": parameters(model)}
        print(f"{stage}: {len(train.y)}+{len(held.y)} rows, AUC held out {report['stages'][stage]['auc']['held_out']}, "
              f"log loss {loss:.4f} (serving {old}), thresholds {thr}", file=sys.stderr)
    if not report["stages"]:
        print("not enough labelled telemetry to train a filter", file=sys.stderr)
        if folder != SHIPPED:
            shutil.rmtree(folder, ignore_errors=True)
        return 1
    compared = any(r["log_loss"]["serving"] is not None for r in report["stages"].values())
    promoted = not (args.ship or args.no_promote) and (not compared or totals["new"] < totals["serving"]) \
        and totals["new"] <= totals["shipped"]
    report["promotion"] = {**totals, "promoted": promoted}
    manifest["metrics"] = {s: {k: r[k] for k in ("rows", "auc", "log_loss")} for s, r in report["stages"].items()}
    manifest["data"] = report["data"]
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    (folder / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    report_png(report, folder / "report.png")
    load_filter(folder)  # what the server will do with it
    print(f"wrote {folder} ({MANIFEST}, report.json, report.png)", file=sys.stderr)
    if promoted:
        promote(folder)
        print(f"promoted {name}: it now serves", file=sys.stderr)
    elif not (args.ship or args.no_promote):
        print(f"not promoted: {name} is not better than the serving filter (and the shipped one) on held-out rows; "
              f"summed log loss {totals}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
