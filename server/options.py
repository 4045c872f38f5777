"""Every decision of context -> prompt -> generation -> post-processing, as one switch each.

The defaults are what ships. `python -m training.evaluate --ablate NAME=VALUE` flips any of them, and
`docs/benchmarks.md` holds the measured effect of each: a stage stays only while it wins, or is neutral
and buys measured speed.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

PATH_HEADERS = ("none", "relative", "absolute")
BLOCK_CONFIDENCES = ("line_start", "lowest_token")
CHOICES = {"path_header": PATH_HEADERS, "block_confidence": BLOCK_CONFIDENCES}


@dataclass(frozen=True)
class Options:
    # --- context: what the model sees ---
    context_tokens: int = 2048  # the model's window (n_ctx), capped by its manifest: prompt + answer fit in it
    prefix_tokens: int = 512
    suffix_tokens: int = 256
    # The prefix start moves in steps of this many lines so the KV cache survives typing new lines; a step
    # moves the start by at most a quarter of the prefix budget (server.context.cut_prefix).
    start_quantum: int = 16
    # Windows of other open files of the same language (Jaccard). Off until the benchmark shows they pay for
    # their prompt tokens: on a cold request they cost more time than the raw call spends in all.
    snippets: bool = False
    snippet_tokens: int = 256
    snippet_window: int = 20
    max_snippets: int = 2
    # --- prompt ---
    # The file's path in Qwen's <|file_sep|> form: none | relative | absolute. The 0.5B-Instruct infills better
    # without it (docs/benchmarks.md); relative is what a model trained on repositories expects.
    path_header: str = "none"
    # --- generation and post-processing ---
    # After typing at the cursor, the suffix part of the prompt is still in the KV cache, at the wrong positions:
    # move all of it but its first tokens into place (llama.cpp's K-shift) instead of evaluating it again, until
    # more than this many prompt tokens have changed ahead of it since it was last evaluated (its entries never
    # saw those); 0: never. Simulator, test split, real time, 25 episodes, with prefetch against neither:
    # suggestions shown x1.43 [1.21, 1.73], characters accepted per character typed x1.21 [1.08, 1.40], ghost
    # text P99 1,318 -> 693 ms, prompt tokens per model call 183 -> 95. The same answers: with the simulator
    # waiting for every answer, accept rate x1.01 [0.96, 1.02] (docs/benchmarks.md).
    reuse_suffix: int = 24
    prompt_chunk: int = 128  # prompt tokens evaluated between cancellation checks (64-512: within 4%)
    # A request that types along with the running generation waits for it instead of cancelling it, and a
    # request the client cancelled leaves its generation running for the next one (server.inflight).
    # Simulator, test split, 36 episodes paired: suggestions shown x1.93 [1.57, 2.59], accept rate x1.16
    # [1.02, 1.40], characters accepted per character typed x2.11 [1.54, 3.41], model calls x0.46.
    inflight_reuse: bool = True
    # After an accept, start the next suggestion at the end of the accepted text before the client asks for it
    # (server.lsp's prefetch; its request waits for that generation through in-flight reuse). Simulator, real
    # time, 9 episodes: suggestions shown x1.24 [1.08, 1.44], characters accepted per typed x1.10 [1.05, 1.18].
    prefetch: bool = True
    block: bool = True  # multi-line at an empty line in a block (else only at an empty block body)
    # A block keeps a line after its first only while the model's confidence in it is at least
    # `block_min_prob` (0 keeps every line the other rules keep). The confidence is the probability of the
    # token that started the line (line_start: how sure the model was that the block goes on), or of the
    # least certain token on it (lowest_token). Validation split, 100 empty-line + 99 block tasks, against
    # lowest_token: ES +0.023 [+0.007, +0.039] (blocks +0.055, single empty lines -0.009) (docs/benchmarks.md).
    block_confidence: str = "line_start"
    block_min_prob: float = 0.5
    syntax_check: bool = True  # tree-sitter: a block ends where the file parses; a line must parse
    # A first line that repeats the code at or after the cursor is replaced by the model's runner-up at the
    # token it was least sure of on that line (one extra branch of a few tokens; the prompt stays cached).
    avoid_repeat: bool = True
    # At the start of a line with code, when the answer is nothing or a statement over several lines, try the
    # runner-up at the least certain token of its first line and take it if it gives one whole line.
    line_start_one_line: bool = True  # validation split, 100 line-start tasks: ES +0.034 [+0.012, +0.060]
    stop_blank_line: bool = False  # a blank line after content ends a block
    stop_dedent: bool = True  # a line indented less than the block's first line ends it
    stop_suffix_repeat: bool = True  # a line that repeats the next line of the suffix ends it
    heal_indent: bool = True  # drop the indentation the model re-writes at an indentation-only line
    trim_overlap: bool = True  # drop a tail of the completion that the suffix already contains
    drop_chat: bool = True  # an instruct model's chat formatting (``` fences) is never code
    line_start_newline: bool = True  # at the start of a line with code, insert a whole line
    # --- the model ---
    # The LoRA adapter served on the base model: "promoted" (the user's newest, training.models promote; else
    # the one shipped for the base, models/adapters/), "shipped", "none", or an adapter's name (server.registry).
    adapter: str = "promoted"
    # Serve an adapter from the copy of the model's weights it was baked into (server.bake, made by
    # `python -m server.models pull`), when there is one, instead of applying it on every token.
    bake: bool = True
    # --- the show/no-show filter (server.filter) ---
    # current: the promoted filter, else the shipped default (server.filter_files); off; or a filter folder
    filter: str = "current"
    # Every this many outcomes (accepts, partial accepts, ignores) with telemetry on, the serving filter is
    # continued on them in the background and promoted if better (training.filter --online); 0: never.
    filter_update_every: int = 200
    # Share of below-threshold decisions served anyway (logged with their propensity, for unbiased training
    # data): this at a new filter's start, halving every 2,000 decisions, never below 0.02 (or this if lower).
    exploration: float = 0.10

    def with_values(self, **raw: str) -> Options:
        """A copy with values parsed from strings (command-line ablations); unknown names are errors."""
        types = {f.name: type(getattr(self, f.name)) for f in fields(self)}
        changes: dict[str, object] = {}
        for name, value in raw.items():
            if name not in types:
                raise ValueError(f"unknown option {name!r}; known: {', '.join(types)}")
            kind = types[name]
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0", "on", "off"):
                    raise ValueError(f"option {name} takes true/false, got {value!r}")
                changes[name] = value.lower() in ("true", "1", "on")
            elif kind in (int, float):
                changes[name] = kind(value)
            else:
                if name in CHOICES and value not in CHOICES[name]:
                    raise ValueError(f"{name} takes one of {', '.join(CHOICES[name])}, got {value!r}")
                changes[name] = value
        return replace(self, **changes)
