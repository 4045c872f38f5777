"""One keystroke through the session: admission on the caller's thread, the model only for admitted requests."""
from fakes import ScriptedRuntime

from server.engine import Admitted, Request, Result
from server.names import Reason, ServerState
from server.session import Session


class Reject:
    name = "reject-all@test"

    def score(self, features):
        return 0.0


def loaded_session(events: list) -> Session:
    s = Session(notify=lambda kind, payload: events.append((kind, payload)),
                loader=lambda name: ScriptedRuntime("sum(xs)\n"))
    s.load_model()
    return s


REQ = Request("file:///w/t.py", "total = \n", len("total = "), "python", path="/w/t.py")


def test_a_filtered_request_is_answered_without_the_model_queue():
    events: list = []
    s = loaded_session(events)
    s.engine.filter = Reject()
    events.clear()
    got = s.admit(REQ)
    assert isinstance(got, Result) and got.reason is Reason.FILTERED
    assert s.stats["requests"] == 1 and s.stats["model_calls"] == 0 and events == []  # no "generating"


def test_an_admitted_request_generates_once_and_shows_generating():
    events: list = []
    s = loaded_session(events)
    events.clear()
    admitted = s.admit(REQ)
    assert isinstance(admitted, Admitted) and s.stats["model_calls"] == 0
    result = s.generate(REQ, admitted, cancel=None)
    assert result.text == "sum(xs)" and s.stats == {**s.stats, "requests": 1, "model_calls": 1}
    assert [p["state"] for k, p in events if k == "status"] == [ServerState.GENERATING.value,
                                                                   ServerState.READY.value]
    assert s.admit(Request(REQ.uri, "total = s\n", len("total = s"), "python")).source == "cache"
    assert s.stats["cache_hits"] == 1


def test_admission_waits_for_the_model_and_says_when_there_is_none():
    s = Session(loader=lambda name: ScriptedRuntime("x"))
    assert s.admit(REQ) is None  # still loading: ask again once loaded
    broken = Session(loader=lambda name: (_ for _ in ()).throw(ValueError("bad model file")))
    broken.load_model()
    assert broken.admit(REQ).reason is Reason.NO_MODEL and broken.error == "bad model file"
