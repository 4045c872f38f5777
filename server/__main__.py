"""`python -m server`: the language server on stdio (or --tcp), or `complete` for one-off completions."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from .names import LANGUAGE_IDS
from .options import Options


def language_of(path: str) -> str:
    return LANGUAGE_IDS.get(Path(path).suffix.lower(), "")


def _offset(text: str, line: int, character: int) -> int:
    lines = text.split("\n")
    if not 0 <= line < len(lines):
        raise SystemExit(f"error: line {line} is outside the file ({len(lines)} lines, 0-based)")
    if not 0 <= character <= len(lines[line]):
        raise SystemExit(f"error: character {character} is past the end of line {line} "
                         f"({len(lines[line])} characters)")
    return sum(len(x) + 1 for x in lines[:line]) + character


def cmd_complete(args: argparse.Namespace, options: Options) -> int:
    from .engine import Engine, InputError, Request
    from .models import ModelError
    from .runtime import load_runtime
    from .settings import Settings

    try:
        engine = Engine(load_runtime(args.model, options.adapter, use_baked=options.bake), options=options)
    except ModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    settings = Settings(multiline=args.multiline)
    if args.max_tokens is not None:
        settings = replace(settings, maxTokens=args.max_tokens)
    if args.jsonl:
        out = open(args.out, "w") if args.out else sys.stdout
        for i, line in enumerate(open(args.jsonl)):
            if not line.strip():
                continue
            item = json.loads(line)
            prefix, suffix = item.get("prefix", ""), item.get("suffix", "")
            t0 = time.perf_counter()
            req = Request(f"jsonl:{i}", prefix + suffix, len(prefix), item.get("language", ""))
            r = engine.complete(req, settings)
            out.write(json.dumps({**{k: v for k, v in item.items() if k not in ("prefix", "suffix")},
                                  "completion": r.text, "model": r.model_id,
                                  "latency_ms": round((time.perf_counter() - t0) * 1000, 1),
                                  "timings": {k: round(v, 1) for k, v in r.timings.items()}}) + "\n")
            out.flush()
        return 0
    if not args.file or args.line is None or args.character is None:
        print("error: complete needs FILE --line N --character N, or --jsonl IN", file=sys.stderr)
        return 2
    text = Path(args.file).read_text(errors="replace")
    req = Request(Path(args.file).resolve().as_uri(), text, _offset(text, args.line, args.character),
                  language_of(args.file), path=args.file)
    try:
        r = engine.complete(req, settings)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(r.text)
    print(f"[{r.reason or 'ok'}] {r.timings.get('total_ms', 0):.0f} ms", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    ap.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    ap.add_argument("--stdio", action="store_true", help="talk LSP on stdin/stdout (the default)")
    ap.add_argument("--log-level", default="WARNING",
                    help="stderr logging: warnings and errors by default (INFO lists every request)")
    ap.add_argument("--verbose", action="store_const", const="INFO", dest="log_level", help="--log-level INFO")
    ap.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                    help="a pipeline switch of server/options.py, for benchmarks (repeatable)")
    sub = ap.add_subparsers(dest="cmd")
    c = sub.add_parser("complete", help="complete at a position in FILE (or every line of --jsonl)")
    c.add_argument("file", nargs="?")
    c.add_argument("--line", type=int, help="0-based line")
    c.add_argument("--character", type=int, help="0-based column")
    c.add_argument("--model", help="manifest name or path to a .gguf")
    c.add_argument("--jsonl", help='input lines {"prefix","suffix","language"}')
    c.add_argument("--out", help="with --jsonl: write results here instead of stdout")
    c.add_argument("--max-tokens", type=int, default=None, help="generation cap (default: the maxTokens setting's)")
    c.add_argument("--multiline", choices=("auto", "always", "never"), default="auto")
    args = ap.parse_args(argv)
    # stdout is the LSP channel: every log line goes to stderr.
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pygls").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        options = Options().with_values(**dict(o.partition("=")[::2] for o in args.option))
    except ValueError as e:
        ap.error(str(e))
    if args.cmd == "complete":
        return cmd_complete(args, options)
    from .lsp import create_server, serve_stdio
    server = create_server(options)
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
        return 0
    code = serve_stdio(server)
    if code == 0:  # after shutdown and exit: every answer is sent and every write done
        # so the interpreter's teardown is skipped: a native library's threads can abort it ("terminate called
        # without an active exception", about one exit in fifteen), which the client sees as a crash.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return code


if __name__ == "__main__":
    sys.exit(main())
