"""The llama.cpp runtime with the real model: hand-written greedy decoding must be llama.cpp's own."""
import pytest

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def runtime():
    from server.runtime import load_runtime
    return load_runtime(None)


def test_the_model_is_named_by_name_and_hash(runtime):
    from server.models import load_manifests
    m = load_manifests()["qwen2.5-coder-0.5b-instruct-q4_k_m"]
    assert runtime.model_id == f"{m.name}@{m.sha256[:8]}" and runtime.n_ctx == 2048


PROMPTS = [
    ("def fib(n):\n    ", "\n\nprint(fib(10))\n"),
    ("import os\n\nfor name in os.listdir('.'):\n    if name.endswith('.py'):\n        ", "\n"),
    ("function add(a, b) {\n  return ", ";\n}\n"),
]


@pytest.mark.parametrize("prefix,suffix", PROMPTS)
def test_greedy_by_hand_matches_llama_cpp_sampler(runtime, prefix, suffix):
    prompt = runtime.template.render(prefix, suffix)
    runtime.reset()
    ours = runtime.generate(prompt, max_tokens=32, should_stop=lambda t, *_: False)
    llm = runtime.llm
    runtime.reset()
    ref = bytearray()
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    for i, tok in enumerate(llm.generate(tokens, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True)):
        if tok in runtime.stop_ids or i >= ours.n_generated:
            break
        ref += llm.detokenize([tok])
    assert ours.text == ref.decode("utf-8", errors="replace")
    assert len(ours.line_logprobs) == ours.text.count("\n") + 1
    assert all(lp <= 0 for lp in ours.line_logprobs) and min(ours.line_logprobs) < 0
    # each line after the first starts with the token that carries its newline: that token's log-probability
    starts = [0.0]
    for _, lp, piece, *_ in ours.steps:
        if n := piece.count("\n"):
            starts += [0.0] * (n - 1) + [lp]
    assert ours.line_start_logprobs == starts and len(starts) == len(ours.line_logprobs)


def test_cold_runs_are_reproducible_and_reuse_is_counted(runtime):
    prompt = runtime.template.render(*PROMPTS[0])
    runtime.reset()
    a = runtime.generate(prompt, max_tokens=24, should_stop=lambda t, *_: False)
    b = runtime.generate(prompt, max_tokens=24, should_stop=lambda t, *_: False)  # warm: the KV cache is reused
    runtime.reset()
    c = runtime.generate(prompt, max_tokens=24, should_stop=lambda t, *_: False)
    assert a.text == c.text and a.n_reused == 0 and b.n_reused == b.n_prompt - 1


def test_branch_takes_the_runner_up_where_least_sure_then_continues_greedily(runtime):
    prompt = runtime.template.render(*PROMPTS[0])
    runtime.reset()
    a = runtime.generate(prompt, max_tokens=16, should_stop=lambda t, *_: False)
    assert all(alt_lp <= lp for _, lp, _, _, alt_lp in a.steps)  # greedy: the runner-up never beats the pick
    forced = a.branch_in(len(a.text))
    k = len(forced) - 1
    assert forced[:k] == [(tok, lp) for tok, lp, *_ in a.steps[:k]]
    assert forced[k] == (a.steps[k][3], a.steps[k][4]) and forced[k][0] != a.steps[k][0]
    assert a.steps[k][1] == min(lp for _, lp, piece, *_ in a.steps if piece.strip())
    b = runtime.generate(prompt, max_tokens=16, should_stop=lambda t, *_: False, forced=forced)  # warm
    runtime.reset()
    c = runtime.generate(prompt, max_tokens=16, should_stop=lambda t, *_: False, forced=forced)  # cold
    assert b.text == c.text and b.n_reused == b.n_prompt and c.n_reused == 0
    assert [tok for tok, *_ in c.steps[:k + 1]] == [tok for tok, _ in forced] and c.text != a.text


# A function body being typed: the FIM prefix grows at the cursor, the suffix after it stays the same.
BODY_PREFIX = '''import math


def distance(a, b):
    """Euclidean distance between two points given as (x, y) tuples."""
    dx = a[0] - b[0]
'''
BODY_SUFFIX = '''    return math.sqrt(dx * dx + dy * dy)


def midpoint(a, b):
    """The point halfway between a and b."""
    return ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)


def perimeter(points):
    """Length of the closed polygon through `points`, in order."""
    return sum(distance(p, q) for p, q in zip(points, points[1:] + points[:1]))
'''


def evaluated(runtime, prompt, **kw):
    before = runtime.prompt_tokens_evaluated
    g = runtime.generate(prompt, max_tokens=16, should_stop=lambda t, *_: "\n" in t, **kw)
    return g, runtime.prompt_tokens_evaluated - before


def test_typing_moves_the_far_suffix_into_place_instead_of_evaluating_it_again(runtime):
    from server.runtime import FRESH_AFTER_EDIT
    render = runtime.template.render
    runtime.reset()
    evaluated(runtime, render(BODY_PREFIX, BODY_SUFFIX), reuse_suffix=64)
    moved, n_moved = evaluated(runtime, render(BODY_PREFIX + "    d", BODY_SUFFIX), reuse_suffix=64)
    runtime.reset()
    cold, n_cold = evaluated(runtime, render(BODY_PREFIX + "    d", BODY_SUFFIX))
    # the edit, the suffix's first tokens and the last prompt token are evaluated; the rest of the suffix is moved
    assert n_moved <= FRESH_AFTER_EDIT + 4 < n_cold - 40
    assert moved.n_reused == moved.n_prompt - n_moved
    assert moved.text == cold.text == "y = a[1] - b[1]\n"
    # past the limit of tokens changed ahead of it, the suffix is evaluated afresh
    _, n_again = evaluated(runtime, render(BODY_PREFIX + "    dy = a[1] - b[1]\n    ", BODY_SUFFIX), reuse_suffix=4)
    assert n_again > 40


def test_a_branch_leaves_the_suffix_movable_for_the_next_keystroke(runtime):
    """A branch (forced tokens after the same prompt) does not count as the last prompt: its suffix still moves."""
    from server.runtime import FRESH_AFTER_EDIT
    render = runtime.template.render
    runtime.reset()
    first, _ = evaluated(runtime, render(BODY_PREFIX, BODY_SUFFIX), reuse_suffix=64)
    runtime.generate(render(BODY_PREFIX, BODY_SUFFIX), max_tokens=4, should_stop=lambda t, *_: False,
                     forced=[(tok, lp) for tok, lp, *_ in first.steps[:1]], reuse_suffix=64)
    _, n_moved = evaluated(runtime, render(BODY_PREFIX + "    d", BODY_SUFFIX), reuse_suffix=64)
    assert n_moved <= FRESH_AFTER_EDIT + 4


def test_a_cancelled_move_leaves_the_cache_consistent(runtime):
    import threading

    from server.runtime import Cancelled
    render = runtime.template.render
    runtime.reset()
    evaluated(runtime, render(BODY_PREFIX, BODY_SUFFIX), reuse_suffix=64)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        runtime.generate(render(BODY_PREFIX + "    dy", BODY_SUFFIX), max_tokens=8, should_stop=lambda t, *_: False,
                         cancel=cancel, reuse_suffix=64)
    warm, _ = evaluated(runtime, render(BODY_PREFIX + "    dy", BODY_SUFFIX), reuse_suffix=64)
    runtime.reset()
    cold, _ = evaluated(runtime, render(BODY_PREFIX + "    dy", BODY_SUFFIX))
    assert warm.text == cold.text
