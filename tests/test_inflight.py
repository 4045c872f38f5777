"""In-flight reuse: which requests may wait for the generation under way instead of cancelling it."""
import threading

from server.engine import Request
from server.inflight import Flight

DOC = "def f(xs):\n    return \n\nprint(f([1]))\n"
AT = DOC.index("return ") + len("return ")


def request(text: str, offset: int, uri: str = "file:///a.py") -> Request:
    return Request(uri, text, offset, "python")


def typed(s: str) -> Request:
    return request(DOC[:AT] + s + DOC[AT:], AT + len(s))


def flight_at(offset: int = AT) -> Flight:
    return Flight(request(DOC, offset), threading.Event())


def test_typing_what_the_model_produced_or_may_still_produce_is_served():
    flight = flight_at()
    flight.progress("sum(xs)\n")
    assert flight.serves(request(DOC, AT))  # the same request again
    assert flight.serves(typed("s")) and flight.serves(typed("sum("))
    early = flight_at()
    assert early.serves(typed("su"))  # nothing produced yet: it may still agree
    early.progress("s")
    early.progress("sum")
    assert not early.cancel.is_set()


def test_output_parting_from_what_was_typed_cancels_the_generation():
    flight = flight_at()
    flight.progress("s")
    assert flight.serves(typed("sorted("))
    flight.progress("sum")  # no longer what the waiting request typed
    assert flight.cancel.is_set()
    unwatched = flight_at()
    unwatched.progress("max")  # nobody waits for it: it runs on
    assert not unwatched.cancel.is_set()


def test_anything_else_is_not_served():
    flight = flight_at()
    flight.progress("sum(")
    assert not flight.serves(typed("max"))  # typed something else
    assert not flight.serves(request(DOC, AT - 1))  # moved back
    other_suffix = DOC[:AT] + "s" + DOC[AT:].replace("print", "show")
    assert not flight.serves(request(other_suffix, AT + 1))  # edited elsewhere too
    assert not flight.serves(request(DOC[:AT] + "s" + DOC[AT:], AT + 1, uri="file:///b.py"))
