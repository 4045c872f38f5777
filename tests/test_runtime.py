"""The llama.cpp runtime with the real model: hand-written greedy decoding must be llama.cpp's own."""
import pytest

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def runtime():
    from server.lsp import load_runtime
    return load_runtime(None)


PROMPTS = [
    ("def fib(n):\n    ", "\n\nprint(fib(10))\n"),
    ("import os\n\nfor name in os.listdir('.'):\n    if name.endswith('.py'):\n        ", "\n"),
    ("function add(a, b) {\n  return ", ";\n}\n"),
]


@pytest.mark.parametrize("prefix,suffix", PROMPTS)
def test_greedy_by_hand_matches_llama_cpp_sampler(runtime, prefix, suffix):
    prompt = runtime.template.render(prefix, suffix)
    runtime.reset()
    ours = runtime.generate(prompt, max_tokens=32, should_stop=lambda t, _: False)
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


def test_cold_runs_are_reproducible_and_reuse_is_counted(runtime):
    prompt = runtime.template.render(*PROMPTS[0])
    runtime.reset()
    a = runtime.generate(prompt, max_tokens=24, should_stop=lambda t, _: False)
    b = runtime.generate(prompt, max_tokens=24, should_stop=lambda t, _: False)  # warm: the KV cache is reused
    runtime.reset()
    c = runtime.generate(prompt, max_tokens=24, should_stop=lambda t, _: False)
    assert a.text == c.text and a.n_reused == 0 and b.n_reused == b.n_prompt - 1
