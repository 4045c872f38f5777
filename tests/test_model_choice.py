"""`ghostline.model: auto`: which model a machine gets and what the status bar says about it."""
import pytest
from fakes import ScriptedRuntime

from server.model_choice import AUTO, LARGER, choose, resolve_auto
from server.models import default_model_name
from server.options import Options
from server.session import Session

DEFAULT = default_model_name()


def present(name: str) -> bool:
    return True


def absent(name: str) -> bool:
    return False


def instruct_only(name: str) -> bool:
    return name == LARGER[1]


@pytest.mark.parametrize("gpu,cores,have,model,words", [
    (True, 2, present, LARGER[0], "GPU"),
    (False, 16, present, LARGER[0], "16 cores"),
    (False, 16, instruct_only, LARGER[1], "16 cores"),
    (False, 2, present, DEFAULT, "2 cores and no GPU offload"),
    (True, 2, absent, DEFAULT, "no 1.5B is downloaded"),
    (False, 16, absent, DEFAULT, f"server.models pull {LARGER[1]}"),
])
def test_auto_takes_the_larger_model_only_where_it_is_there_and_fast_enough(gpu, cores, have, model, words):
    choice = choose(gpu=gpu, cores=cores, present=have)
    assert choice.model == model and words in choice.why and choice.why.startswith(f"auto: {model}")


def test_other_settings_are_not_touched():
    assert resolve_auto("") == ("", None) and resolve_auto("x.gguf") == ("x.gguf", None)
    model, why = resolve_auto(AUTO)  # this machine: the CPU wheel, its own cores
    assert model in (DEFAULT, *LARGER) and why.startswith(f"auto: {model}")


def test_the_status_bar_says_why_auto_chose_the_model():
    events: list = []
    runtime = ScriptedRuntime("x")
    runtime.chosen = "auto: m; 2 cores and no GPU offload"
    s = Session(notify=lambda kind, payload: events.append((kind, payload)), loader=lambda name: runtime,
                options=Options(filter="off"))
    s.load_model()
    ready = [p for k, p in events if k == "status"][-1]
    assert ready["state"] == "ready" and ready["message"] == runtime.chosen


@pytest.mark.model
def test_auto_loads_what_it_chose_and_offloads_only_where_llama_cpp_can():
    from server.model_choice import gpu_offload, serving_threads
    from server.runtime import load_runtime

    runtime = load_runtime(AUTO, "none")
    assert runtime.model.name == choose(gpu=gpu_offload(), cores=serving_threads()).model
    assert runtime.chosen.startswith(f"auto: {runtime.model.name}")
    assert (runtime.llm.model_params.n_gpu_layers > 0) == gpu_offload()  # llama-cpp-python stores -1 as "all"
