import threading
import time

import pytest

from server.cache import TypingCache
from server.scheduler import LatestWins, Superseded


def test_typing_through_hit():
    c = TypingCache()
    c.put("u", "x = ", "\n", "compute(a, b)", "id1")
    hit = c.get("u", "x = comp", "\n")
    assert hit.text == "ute(a, b)" and hit.typed == 4 and hit.entry.completion_id == "id1"


def test_typing_something_else_misses():
    c = TypingCache()
    c.put("u", "x = ", "\n", "compute(a, b)", "id1")
    assert c.get("u", "x = cx", "\n") is None
    assert c.get("u", "x = compute(a, b)", "\n") is None  # typed it all: nothing left to show
    assert c.get("u", "x = comp", "\n)") is None  # the suffix changed
    assert c.get("other", "x = comp", "\n") is None


def test_cache_is_bounded():
    c = TypingCache(size=4)
    for i in range(20):
        c.put(f"u{i}", "p", "s", "text", str(i))
    assert len(c._entries) == 4


def test_latest_wins_cancels_running_job_of_same_document():
    sched = LatestWins()
    started = threading.Event()

    def slow(cancel):
        started.set()
        for _ in range(500):
            if cancel.is_set():
                raise Superseded()
            time.sleep(0.01)
        return "slow"

    first = sched.submit("doc", slow)
    assert started.wait(5)
    second = sched.submit("doc", lambda cancel: "fast")
    with pytest.raises(Superseded):
        first.future.result(5)
    assert second.future.result(5) == "fast"
    sched.close()


def test_waiting_job_is_replaced_not_queued():
    sched = LatestWins()
    gate = threading.Event()
    blocker = sched.submit("a", lambda cancel: gate.wait(5))
    waiting = sched.submit("b", lambda cancel: "old")
    newer = sched.submit("b", lambda cancel: "new")
    with pytest.raises(Superseded):
        waiting.future.result(1)
    gate.set()
    assert blocker.future.result(5) is True and newer.future.result(5) == "new"
    sched.close()


def test_waiting_queue_is_bounded():
    sched = LatestWins(max_waiting=3)
    gate = threading.Event()
    sched.submit("busy", lambda cancel: gate.wait(5))
    jobs = [sched.submit(f"d{i}", lambda cancel: "ok") for i in range(6)]
    gate.set()
    outcomes = []
    for j in jobs:
        try:
            outcomes.append(j.future.result(5))
        except Superseded:
            outcomes.append("dropped")
    assert outcomes.count("dropped") == 3 and outcomes[-3:] == ["ok"] * 3
    sched.close()


def test_worker_survives_a_failing_job():
    sched = LatestWins()
    bad = sched.submit("a", lambda cancel: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        bad.future.result(5)
    assert sched.submit("a", lambda cancel: "alive").future.result(5) == "alive"
    sched.close()


def test_client_cancelled_futures_do_not_break_later_requests():
    # $/cancelRequest cancels a job's future from the event loop at any time: a running one, and a waiting
    # one that a newer request then replaces. Neither may raise into the newer request or the worker.
    sched = LatestWins()
    gate, started = threading.Event(), threading.Event()
    running = sched.submit("a", lambda cancel: started.set() or (gate.wait(5) and "late"))
    assert started.wait(5)
    waiting = sched.submit("b", lambda cancel: "never")
    running.future.cancel()
    assert waiting.future.cancel()
    newer = sched.submit("b", lambda cancel: "newer")  # replaces the cancelled waiting job
    gate.set()
    assert newer.future.result(5) == "newer"
    assert sched.submit("c", lambda cancel: "ok").future.result(5) == "ok"
    sched.close()


def test_an_empty_answer_answers_only_the_same_place_again():
    c = TypingCache()
    c.put("u", "x = 1\n", "\n", "", "id1")
    hit = c.get("u", "x = 1\n", "\n")
    assert hit is not None and hit.text == "" and hit.entry.completion_id == "id1"
    assert c.get("u", "x = 1\ny", "\n") is None  # typed on: the model may have something now
    assert c.get("u", "x = 1\n", "\n\n") is None  # the suffix changed
