"""Inspect, export and delete Ghostline's local telemetry.

    python -m training.telemetry stats  [--db PATH] [--json]
    python -m training.telemetry export [--db PATH] [-o FILE] [--since-days N]
    python -m training.telemetry snapshot DEST [--db PATH] [--no-code]
    python -m training.telemetry purge  [--db PATH] --yes [--key] [--key-path PATH]
    python -m training.telemetry review [--db PATH] [--drop ID ...] [--drop-files GLOB ...] [--restore ID|GLOB ...]

`stats` and `export` read a code-free snapshot of the database (taken next to it, removed afterwards),
never the live file for long. `export` writes JSON lines of metrics only: the raw code columns are never read, even
when the database was recorded at training level.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from server.telemetry import (
    EVENT_KINDS,
    SCHEMA_VERSION,
    default_db_path,
    default_key_path,
    events,
    migrate,
    open_snapshot,
    related_files,
    snapshot_db,
    suggestions,
)
from training.metrics import percentiles

STAGES = ("filter_ms", "wait_ms", "context_ms", "prompt_ms", "generate_ms", "post_ms", "total_ms")


def _require(db: Path) -> bool:
    if db.is_file():
        return True
    print(f"no telemetry database at {db} (telemetry is off, or nothing was recorded yet)", file=sys.stderr)
    return False


def compute_stats(conn: sqlite3.Connection) -> dict[str, Any]:
    """Counts by event kind, accept rate, per-language numbers and latency percentiles."""
    kinds = dict(conn.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
    n_sugg, first, last = conn.execute("SELECT count(*), min(ts), max(ts) FROM suggestions").fetchone()
    per_id = conn.execute("""
        SELECT s.completion_id, s.language, s.completion_len, s.latency_json,
               EXISTS(SELECT 1 FROM events e WHERE e.completion_id = s.completion_id AND e.kind = 'shown'),
               EXISTS(SELECT 1 FROM events e WHERE e.completion_id = s.completion_id
                      AND e.kind IN ('accepted', 'partial'))
        FROM suggestions s""").fetchall()
    any_shown = bool(kinds.get("shown"))

    def rate(rows: list[tuple]) -> dict[str, Any]:
        # Denominator: shown suggestions; clients that do not report "shown": non-empty completions.
        base = [r for r in rows if (r[4] if any_shown else (r[2] or 0) > 0)]
        acc = sum(1 for r in base if r[5])
        return {"shown": len(base), "accepted": acc, "accept_rate": acc / len(base) if base else None}

    def latencies(rows: list[tuple]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for r in rows:
            try:
                lat = json.loads(r[3]) if r[3] else {}
            except ValueError:
                continue
            for k, v in lat.items():
                if isinstance(v, (int, float)):
                    out.setdefault(k, []).append(float(v))
        return out

    lat = latencies(per_id)
    stages = [s for s in STAGES if s in lat] + sorted(k for k in lat if k not in STAGES)
    langs: dict[str, list[tuple]] = {}
    for r in per_id:
        langs.setdefault(r[1] or "unknown", []).append(r)
    per_language = {}
    for lang, rows in sorted(langs.items(), key=lambda kv: -len(kv[1])):
        per_language[lang] = {"requests": len(rows), **rate(rows),
                              "total_ms": percentiles(latencies(rows).get("total_ms", []))}
    return {
        "suggestions": n_sugg,
        "first": first, "last": last,
        "events": {k: kinds.get(k, 0) for k in EVENT_KINDS} | {k: v for k, v in kinds.items() if k not in EVENT_KINDS},
        **rate(per_id),
        "per_language": per_language,
        "latency_ms": {s: {"n": len(lat[s]), **percentiles(lat[s])} for s in stages},
    }


def _fmt_ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def _fmt_rate(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _fmt_ts(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def print_stats(st: dict[str, Any], db: Path, out: TextIO) -> None:
    w = out.write
    w(f"database     {db}\n")
    w(f"suggestions  {st['suggestions']}  (first {_fmt_ts(st['first'])}, last {_fmt_ts(st['last'])} UTC)\n")
    w("events by kind\n")
    for k, v in st["events"].items():
        w(f"  {k:<12}{v:>9}\n")
    w(f"accept rate  {_fmt_rate(st['accept_rate'])}  ({st['accepted']} accepted or partial of {st['shown']} shown)\n")
    w("per language\n")
    w(f"  {'language':<18}{'requests':>9}{'shown':>8}{'accepted':>9}{'rate':>8}{'P50 ms':>8}{'P90 ms':>8}\n")
    for lang, s in st["per_language"].items():
        w(f"  {lang[:18]:<18}{s['requests']:>9}{s['shown']:>8}{s['accepted']:>9}{_fmt_rate(s['accept_rate']):>8}"
          f"{_fmt_ms(s['total_ms']['p50']):>8}{_fmt_ms(s['total_ms']['p90']):>8}\n")
    w("latency (ms)\n")
    w(f"  {'stage':<14}{'n':>8}{'P50':>8}{'P90':>8}{'P99':>8}\n")
    for stage, s in st["latency_ms"].items():
        w(f"  {stage[:14]:<14}{s['n']:>8}{_fmt_ms(s['p50']):>8}{_fmt_ms(s['p90']):>8}{_fmt_ms(s['p99']):>8}\n")


def export_rows(conn: sqlite3.Connection, since: float | None = None) -> Iterator[dict[str, Any]]:
    """One dict per suggestion: the metric columns (never raw code) and its events."""
    for rec in suggestions(conn, since=since, outcomes=False):
        rec["events"] = events(conn, rec["completion_id"])
        yield rec


def cmd_stats(args: argparse.Namespace) -> int:
    db = Path(args.db)
    if not _require(db):
        return 1
    with open_snapshot(db) as conn:
        st = compute_stats(conn)
    if args.json:
        json.dump(st, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print_stats(st, db, sys.stdout)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    db = Path(args.db)
    if not _require(db):
        return 1
    since = None
    if args.since_days is not None:
        since = datetime.now(UTC).timestamp() - args.since_days * 86400
    out = sys.stdout if args.output in (None, "-") else open(args.output, "w", encoding="utf-8")
    n = 0
    try:
        with open_snapshot(db) as conn:
            for rec in export_rows(conn, since):
                out.write(json.dumps(rec, separators=(",", ":")) + "\n")
                n += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"exported {n} suggestions (metrics only, no code)", file=sys.stderr)
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    db = Path(args.db)
    if not _require(db):
        return 1
    dest = snapshot_db(db, args.dest, include_code=not args.no_code)
    conn = sqlite3.connect(dest, isolation_level=None)
    try:
        migrate(conn)
    finally:
        conn.close()
    print(f"snapshot written to {dest} (schema {SCHEMA_VERSION}{', code removed' if args.no_code else ''})",
          file=sys.stderr)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    db = Path(args.db)
    targets = related_files(db)
    key = Path(args.key_path) if args.key_path else default_key_path()
    if args.key and key.exists():
        targets.append(key)
    if not targets:
        print(f"nothing to delete at {db}", file=sys.stderr)
        return 0
    if not args.yes:
        print("would delete (run again with --yes):", file=sys.stderr)
        for t in targets:
            print(f"  {t}", file=sys.stderr)
        return 2
    failed = 0
    for t in targets:
        try:
            t.unlink()
            print(f"deleted {t}", file=sys.stderr)
        except FileNotFoundError:
            pass
        except OSError as e:
            failed += 1
            print(f"could not delete {t}: {e}", file=sys.stderr)
    if not args.key and key.exists():
        print(f"kept the hashing key {key} (add --key to delete it too)", file=sys.stderr)
    print("note: a Ghostline server that is running with telemetry on keeps writing to the deleted file "
          "until it restarts; turn telemetry off or restart it", file=sys.stderr)
    return 1 if failed else 0


def cmd_review(args: argparse.Namespace) -> int:
    """What `python -m training.finetune --db` would train on, as stored (redacted), and what is dropped;
    --drop / --drop-files / --restore change that before anything is used."""
    from training import fim_examples
    ex = fim_examples.excluded()
    ids = (set(ex["ids"]) | set(args.drop)) - set(args.restore)
    files = (set(ex["files"]) | set(args.drop_files)) - set(args.restore)
    if args.drop or args.drop_files or args.restore:
        fim_examples.set_excluded(ids, files)
    db = Path(args.db)
    rows = fim_examples.accepted_rows(db) if db.exists() else []
    out = sys.stdout
    for r in rows[-args.limit:]:
        when = datetime.fromtimestamp(r["ts"], UTC).strftime("%Y-%m-%d %H:%M")
        before = "\n".join((r["prefix"] or "").split("\n")[-3:])
        out.write(f"--- {r['completion_id']}  {when}  {r.get('language') or '?'}  survived "
                  f"{'?' if r.get('survival_30s') is None else format(r['survival_30s'], '.2f')}\n"
                  f"{before}\u2590{r['completion'][:r['accepted_length'] or len(r['completion'])]}\u258c\n")
    out.write(f"{len(rows)} accepted completions would be trained on ({db}); {len(ids)} dropped by id\n")
    out.write(f"files never trained on (globs): {', '.join(sorted(files)) or 'none'}\n"
              f"(drop with --drop ID or --drop-files GLOB, undo with --restore; kept in "
              f"{fim_examples.exclusions_path()})\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=argparse.SUPPRESS, help=f"telemetry database (default: {default_db_path()})")
    p = argparse.ArgumentParser(prog="python -m training.telemetry", description=__doc__.split("\n\n")[0],
                                parents=[common])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stats", parents=[common], help="counts, accept rate, per language, latency percentiles")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_stats)
    e = sub.add_parser("export", parents=[common], help="JSON lines of metrics (never code)")
    e.add_argument("-o", "--output", help="file to write (default: stdout)")
    e.add_argument("--since-days", type=float, help="only suggestions from the last N days")
    e.set_defaults(func=cmd_export)
    n = sub.add_parser("snapshot", parents=[common], help="consistent copy of the database for a trainer")
    n.add_argument("dest")
    n.add_argument("--no-code", action="store_true", help="leave out the raw code columns")
    n.set_defaults(func=cmd_snapshot)
    g = sub.add_parser("purge", parents=[common], help="delete the database (and with --key the hashing key)")
    g.add_argument("--yes", action="store_true", help="really delete")
    g.add_argument("--key", action="store_true", help="also delete the per-install hashing key")
    g.add_argument("--key-path", help=f"the key file (default: {default_key_path()})")
    g.set_defaults(func=cmd_purge)
    r = sub.add_parser("review", parents=[common], help="what fine-tuning would train on; drop items or files")
    r.add_argument("--drop", nargs="+", default=[], metavar="ID", help="never train on these suggestions")
    r.add_argument("--drop-files", nargs="+", default=[], metavar="GLOB",
                   help="never train on workspace files matching these globs (e.g. 'secret/*' or 'config.py')")
    r.add_argument("--restore", nargs="+", default=[], metavar="ID_OR_GLOB", help="undo a drop")
    r.add_argument("--limit", type=int, default=50, help="show the newest N (default 50)")
    r.set_defaults(func=cmd_review)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not hasattr(args, "db"):
        args.db = str(default_db_path())
    try:
        return args.func(args)
    except BrokenPipeError:
        return 0
    except (sqlite3.Error, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
