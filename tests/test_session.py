"""One keystroke through the session: admission on the caller's thread, the model only for admitted requests."""
from fakes import FixedFilter, ScriptedRuntime, no_exploration

from server.engine import Admitted, Request, Result
from server.names import Reason, ServerState
from server.options import Options
from server.session import Session


def loaded_session(events: list) -> Session:
    s = Session(notify=lambda kind, payload: events.append((kind, payload)),
                loader=lambda name: ScriptedRuntime("sum(xs)\n"), options=UNFILTERED)
    s.load_model()
    return s


UNFILTERED = Options(filter="off")  # the scripted model's answers are not what the shipped filter judges
REQ = Request("file:///w/t.py", "total = \n", len("total = "), "python", path="/w/t.py")


def test_a_filtered_request_is_answered_without_the_model_queue():
    events: list = []
    s = loaded_session(events)
    s.engine.filter, s.engine.explore = FixedFilter(before=0.0), no_exploration()
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


def test_the_edit_inserting_a_completion_item_is_its_accept_once():
    """For clients that never run an item's command (eglot): the didChange inserting the item's text is the
    accept; a command that arrives as well is not counted twice; other edits are not accepts."""
    s = loaded_session([])
    s.accepts_from_edits = True
    s.offered_item(REQ.uri, "c1", "sum(xs)")
    s.document_changed(REQ.uri, [(0, 0, 0)], ("s",))  # typing is no accept
    assert not s.outcomes
    s.document_changed(REQ.uri, [(0, 0, 0)], ("", "sum(xs)"))
    s.outcome({"id": "c1", "outcome": "accepted"})  # the command, had the client run it
    assert [o["outcome"] for o in s.outcomes] == ["accepted"]
    s.document_changed(REQ.uri, [(0, 0, 0)], ("sum(xs)",))  # the same text again: the item is used up
    assert len(s.outcomes) == 1


def test_clients_that_insert_an_item_on_selection_report_accepts_only_by_command():
    s = loaded_session([])
    s.accepts_from_edits = False  # Neovim: a selected item is in the buffer before it is chosen
    s.offered_item(REQ.uri, "c1", "sum(xs)")
    s.document_changed(REQ.uri, [(0, 0, 0)], ("sum(xs)",))
    assert not s.outcomes


def test_accepts_say_where_the_accepted_text_went_and_shown_calls_are_counted_once():
    """An accept tells `accepted_at` (the prefetch hook) the document, the request's offset and the text
    accepted (a partial accept: its part); a model call counts as seen once, also when shown via a cache hit."""
    told: list = []
    s = Session(loader=lambda name: ScriptedRuntime("sum(xs)\n"), options=UNFILTERED,
                accepted_at=lambda *a: told.append(a))
    s.load_model()
    result = s.generate(REQ, s.admit(REQ), cancel=None)
    s.outcome({"id": result.id, "outcome": "shown"})
    hit = s.admit(Request(REQ.uri, "total = su\n", len("total = su"), "python"))
    s.outcome({"id": hit.id, "outcome": "shown"})  # the same model call's answer, typed through
    assert s.stats["model_calls_seen"] == 1
    s.outcome({"id": hit.id, "outcome": "partial", "acceptedLength": 2})
    s.outcome({"id": result.id, "outcome": "accepted"})
    s.outcome({"id": "unknown", "outcome": "accepted"})  # nothing known: nowhere to tell
    s.outcome({"id": result.id, "outcome": "ignored"})
    assert told == [(REQ.uri, len("total = su"), "m("), (REQ.uri, REQ.offset, "sum(xs)")]
