"""[curation]: visitors' words wait for a person (approve, edit, reject) or the show's timeout,
through the show control and a recording host; the OSC surface through the address table.
The end-to-end run (a real App, spoken words, UDP) is tests/test_curation_e2e.py."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.test_control import PEER, RecordingHost, control_for, send
from installation.control.addresses import ADDRESSES, OscArgumentError, validate_args
from installation.control.curation import RECENT_DECISIONS, CurationQueue, UnknownWords, who
from installation.core.messages import Control, ControlOutcome
from installation.show import MAX_PROMPT_CHARS, CurationConfig

WHO = f"osc {PEER[0]}:{PEER[1]}"


def curated(**curation: Any) -> tuple[RecordingHost, Any]:
    host = RecordingHost()
    ctl = control_for(host, curation={"enabled": True, "timeout_s": 30.0, **curation})
    return host, ctl


def curation_events(host: RecordingHost) -> list[dict]:
    return [fields for event, fields in host.events if event == "curation"]


def speech_prompts(host: RecordingHost) -> list[str]:
    return [p.text for p in host.prompts if p.source == "speech"]


def test_heard_words_wait_with_the_waiting_mark_and_are_not_painted():
    host, ctl = curated(waiting_caption="(heard)")
    ctl.from_speech("a red fox", caption="빨간 여우")
    assert host.prompts == [] and ctl.state.prompt.text == "an empty stage"
    assert host.screen.caption == "빨간 여우 (heard)" == ctl.state.caption_text
    [waiting] = curation_events(host)
    assert waiting == {"state": "waiting", "id": waiting["id"], "text": "a red fox", "caption": "빨간 여우",
                       "pending": 1}
    assert [(w.id, w.text, w.caption) for w in ctl.queue.pending()] == [(waiting["id"], "a red fox", "빨간 여우")]


def test_approve_paints_through_the_template_and_says_who_and_how_long():
    host, ctl = curated()
    words = ctl.hold_words("a red fox", "빨간 여우", now=time.monotonic() - 2.0)
    send(ctl, "/jadong/queue/approve", words.id)
    assert not host.errors()
    prompt = host.prompts[-1]
    assert (prompt.text, prompt.source, prompt.caption) == ("a red fox, woodcut", "speech", "빨간 여우")
    assert host.screen.caption == "빨간 여우"  # the waiting mark is gone
    decision = curation_events(host)[-1]
    assert decision["state"] == "painted" and decision["decision"] == "approve" and decision["who"] == WHO
    assert decision["id"] == words.id and decision["text"] == "a red fox" and 2.0 <= decision["waited_s"] < 3.0
    assert len(ctl.queue) == 0


def test_edit_paints_the_edited_words_and_keeps_the_visitors_caption():
    host, ctl = curated()
    words = ctl.hold_words("a red box", "a red fox")
    send(ctl, "/jadong/queue/edit", words.id, "  a red fox  ")
    assert host.prompts[-1].text == "a red fox, woodcut" and host.prompts[-1].caption == "a red fox"
    decision = curation_events(host)[-1]
    assert (decision["decision"], decision["text"], decision["heard"]) == ("edit", "a red fox", "a red box")


def test_edit_is_bounded_and_cannot_be_empty():
    host, ctl = curated()
    words = ctl.hold_words("a red fox", "a red fox")
    row = ADDRESSES["/jadong/queue/edit"]
    with pytest.raises(OscArgumentError, match=f"at most {MAX_PROMPT_CHARS} characters"):
        validate_args(row, (words.id, "x" * (MAX_PROMPT_CHARS + 1)))
    assert validate_args(row, (float(words.id), "a cat")) == (words.id, "a cat")
    send(ctl, "/jadong/queue/edit", words.id, "   ")
    assert "expected the edited words" in host.errors()[-1][3]
    ctl.edit(words.id, "p" * MAX_PROMPT_CHARS)  # at the limit: painted (the template's part is cut by paint)
    assert len(host.prompts[-1].text) == MAX_PROMPT_CHARS and len(ctl.queue) == 0


def test_a_refused_edit_leaves_the_words_waiting():
    host, ctl = curated()
    words = ctl.hold_words("a red fox", "a red fox")
    ctl.handle(Control("/jadong/queue/edit", (words.id, ""), sender=PEER))
    assert [w.id for w in ctl.queue.pending()] == [words.id] and host.prompts == []


def test_reject_never_paints_and_takes_the_waiting_caption_back():
    host, ctl = curated()
    words = ctl.hold_words("something rude", "something rude")
    send(ctl, "/jadong/queue/reject", words.id)
    assert host.prompts == [] and host.screen.caption == "" and len(ctl.queue) == 0
    decision = curation_events(host)[-1]
    assert (decision["state"], decision["decision"], decision["who"], decision["text"]) == \
        ("dropped", "reject", WHO, "something rude")


def test_deciding_older_words_leaves_newer_waiting_words_on_screen():
    host, ctl = curated()
    first = ctl.hold_words("a boat", "a boat")
    second = ctl.hold_words("a horse", "a horse")
    shown = ctl.waiting_caption(second)
    ctl.reject(first.id)
    assert host.screen.caption == shown
    ctl.approve(0)  # the oldest: now the horse
    assert speech_prompts(host) == ["a horse, woodcut"] and host.screen.caption == "a horse"
    third = ctl.hold_words("a kite", "a kite")
    fourth = ctl.hold_words("a bell", "a bell")
    ctl.approve(third.id)  # painted, but the bell still waits on screen
    assert speech_prompts(host)[-1] == "a kite, woodcut" and host.screen.caption == ctl.waiting_caption(fourth)


@pytest.mark.parametrize(("on_timeout", "decision", "painted"),
                         [("accept", "timeout-accept", ["a red fox, woodcut"]), ("drop", "timeout-drop", [])])
def test_the_timeout_applies_the_shows_choice(on_timeout, decision, painted):
    host, ctl = curated(timeout_s=5.0, on_timeout=on_timeout)
    words = ctl.hold_words("a red fox", "a red fox", now=100.0)
    ctl.tick(104.9)
    assert len(ctl.queue) == 1 and host.prompts == []
    ctl.tick(105.0)
    assert speech_prompts(host) == painted and len(ctl.queue) == 0
    event = curation_events(host)[-1]
    assert (event["id"], event["decision"], event["who"], event["waited_s"]) == (words.id, decision, "timeout", 5.0)
    assert host.screen.caption == ("a red fox" if painted else "")
    ctl.tick(200.0)  # decided once only
    assert len(curation_events(host)) == 2


def test_timeouts_take_every_expired_word_in_order():
    host, ctl = curated(timeout_s=5.0, on_timeout="accept")
    for i, t in enumerate((100.0, 101.0, 107.0)):
        ctl.hold_words(f"word {i}", f"word {i}", now=t)
    ctl.tick(106.5)
    assert speech_prompts(host) == ["word 0, woodcut", "word 1, woodcut"] and len(ctl.queue) == 1


def test_the_bound_drops_the_oldest_with_an_event():
    host, ctl = curated(max_pending=2)
    a, b, c = (ctl.hold_words(w, w) for w in ("one", "two", "three"))
    assert [w.id for w in ctl.queue.pending()] == [b.id, c.id]
    overflow = [e for e in curation_events(host) if e.get("decision") == "overflow"]
    assert overflow == [{"state": "dropped", "id": a.id, "decision": "overflow", "who": "queue", "text": "one",
                         "caption": "one", "waited_s": overflow[0]["waited_s"]}]
    send(ctl, "/jadong/queue/approve", a.id)
    assert "already decided: overflow by queue" in host.errors()[-1][3] and host.prompts == []


def test_unknown_and_already_decided_ids_are_refused_with_a_reason():
    host, ctl = curated()
    words = ctl.hold_words("a red fox", "a red fox")
    send(ctl, "/jadong/queue/approve", words.id + 1000)
    assert host.errors()[-1][2:] == ("/jadong/queue/approve",
                                     f"no words waiting with id {words.id + 1000} (waiting now: {words.id}; "
                                     "0 means the oldest)")
    send(ctl, "/jadong/queue/reject", words.id)
    send(ctl, "/jadong/queue/approve", words.id)  # a second operator, a moment late
    reason = host.errors()[-1][3]
    assert reason.startswith(f"words {words.id} were already decided: reject by {WHO}")
    assert "waiting now: none" in reason
    send(ctl, "/jadong/queue/approve", 0)
    assert host.errors()[-1][3] == "no words are waiting"
    assert host.prompts == [] and ctl.state.last_error.startswith("/jadong/queue/approve: ")


def test_osc_arguments_are_checked_by_the_table():
    for path in ("/jadong/queue/approve", "/jadong/queue/reject"):
        row = ADDRESSES[path]
        assert row.kind == "action" and validate_args(row, (3,)) == (3,) and validate_args(row, (0,)) == (0,)
        for bad, why in (((), "expected 1 argument (i), got 0"), ((-1,), "expected a value from 0"),
                         (("3",), "expected an integer, got string '3'"), ((1.5,), "expected an integer")):
            with pytest.raises(OscArgumentError, match=why.replace("(", r"\(").replace(")", r"\)")):
                validate_args(row, bad)
    with pytest.raises(OscArgumentError, match="expected 2 arguments"):
        validate_args(ADDRESSES["/jadong/queue/edit"], (3,))
    assert validate_args(ADDRESSES["/jadong/queue"], ()) == ()


def test_the_queue_query_replies_with_the_count_and_the_oldest():
    host, ctl = curated()
    send(ctl, "/jadong/queue")
    assert host.replies[-1] == (PEER, "/jadong/queue", 0, 0, "", "", 0.0)
    first = ctl.hold_words("a red fox", "빨간 여우", now=time.monotonic() - 1.5)
    ctl.hold_words("a boat", "a boat")
    send(ctl, "/jadong/queue")
    sender, address, count, oldest, text, caption, age = host.replies[-1]
    assert (count, oldest, text, caption) == (2, first.id, "a red fox", "빨간 여우") and 1.5 <= age < 2.5
    assert dict(ctl.status_values())["/jadong/status/queue"] == (2,)


def test_the_page_gets_a_json_list_and_a_settled_outcome():
    host, ctl = curated(timeout_s=10.0)
    words = ctl.hold_words("a red fox", "빨간 여우", now=50.0)
    snapshot = ctl.queue_snapshot(now=53.0)
    assert json.loads(json.dumps(snapshot)) == [{"id": words.id, "text": "a red fox", "caption": "빨간 여우",
                                                 "age_s": 3.0, "left_s": 7.0}]
    refused: Future[ControlOutcome] = Future()
    ctl.handle(Control("/jadong/queue/approve", (words.id + 1,), sender=("web", 0), outcome=refused))
    assert not refused.result(0).ok and "no words waiting" in refused.result(0).reason
    done: Future[ControlOutcome] = Future()
    ctl.handle(Control("/jadong/queue/approve", (words.id,), sender=("web", 0), outcome=done))
    assert done.result(0).ok and curation_events(host)[-1]["who"] == "web"
    assert ctl.queue_snapshot() == []


def test_without_curation_words_are_painted_at_once_and_decisions_refused():
    host = RecordingHost()
    ctl = control_for(host)
    ctl.from_speech("a red fox", "a red fox")
    assert speech_prompts(host) == ["a red fox, woodcut"] and not curation_events(host)
    send(ctl, "/jadong/queue/approve", 0)
    assert host.errors()[-1][3] == ("no words are waiting; this show paints visitors' words at once "
                                    "([curation] enabled = false)")
    assert dict(ctl.status_values())["/jadong/status/queue"] == (0,)
    ctl.tick()  # nothing waits: nothing happens


def test_discarding_reports_every_waiting_word():
    host, ctl = curated()
    ids = [ctl.hold_words(w, w).id for w in ("one", "two")]
    ctl.discard_pending()
    dropped = [(e["id"], e["decision"], e["who"]) for e in curation_events(host) if e["state"] == "dropped"]
    assert dropped == [(i, "discarded", "show switch") for i in ids] and len(ctl.queue) == 0


def test_senders_are_named_for_the_log():
    assert who(("127.0.0.1", 9001)) == "osc 127.0.0.1:9001"
    assert who(("::1", 9001)) == "osc ::1:9001"
    assert who(("web", 0)) == "web"
    assert who(("web 192.168.1.20", 0)) == "web 192.168.1.20"
    assert who(None) == "local"


def test_decided_ids_are_remembered_within_a_bound():
    queue = CurationQueue(CurationConfig(enabled=True, max_pending=200))
    decided = []
    for i in range(RECENT_DECISIONS + 10):
        words, _ = queue.add(f"w{i}", f"w{i}")
        queue.remove(words, "reject", "web")
        decided.append(words.id)
    with pytest.raises(UnknownWords, match="already decided"):
        queue.find(decided[-1])
    with pytest.raises(UnknownWords, match="no words waiting with id"):
        queue.find(decided[0])


OPS = st.lists(st.one_of(
    st.tuples(st.just("hear"), st.sampled_from(["a fox", "a boat", "rain"]), st.floats(0.0, 3.0)),
    st.tuples(st.sampled_from(["approve", "reject", "edit"]), st.integers(-1, 6), st.floats(0.0, 3.0)),
    st.tuples(st.just("tick"), st.just(0), st.floats(0.0, 10.0)),
), max_size=40)


@settings(max_examples=150, deadline=None)
@given(OPS, st.sampled_from(["accept", "drop"]))
def test_every_word_is_decided_once_and_only_painting_decisions_paint(ops, on_timeout):
    host, ctl = curated(timeout_s=5.0, on_timeout=on_timeout, max_pending=3)
    now = 1000.0
    heard: list[int] = []
    for op, arg, dt in ops:
        now += dt
        if op == "hear":
            heard.append(ctl.hold_words(arg, arg, now=now).id)
        elif op == "tick":
            ctl.tick(now)
        else:
            target = heard[arg] if 0 <= arg < len(heard) else 0
            args = (target, "an edit") if op == "edit" else (target,)
            send(ctl, f"/jadong/queue/{op}", *args)
        assert len(ctl.queue) <= 3
    decided = [e for e in curation_events(host) if e["state"] != "waiting"]
    assert len({e["id"] for e in decided}) == len(decided)  # nobody decides the same words twice
    waiting_ids = {w.id for w in ctl.queue.pending()}
    assert {e["id"] for e in decided} | waiting_ids == set(heard)
    painting = [e for e in decided if e["state"] == "painted"]
    assert all(e["decision"] in ("approve", "edit", "timeout-accept") for e in painting)
    assert len(speech_prompts(host)) == len(painting)
    assert all(e["decision"] != "timeout-accept" for e in decided) or on_timeout == "accept"


def test_the_curated_example_show_holds_words_and_serves_the_page():
    from installation.control.show_control import ShowControl
    from installation.generation.choice import params_from_config
    from installation.show import load_show

    show = load_show("curated")
    assert show.curation.enabled and show.web.enabled and show.web.password == ""  # the password: the env var
    host = RecordingHost()
    ctl = ShowControl(show, host, params_from_config(show.generator))
    ctl.from_speech("a red fox", "a red fox")
    assert host.prompts == [] and host.screen.caption == "a red fox …"
    ctl.tick(time.monotonic() + show.curation.timeout_s)
    assert host.prompts == [] and curation_events(host)[-1]["decision"] == "timeout-drop"


def test_the_painted_prompt_and_its_capture_say_who_approved_it(tmp_path, monkeypatch):
    """Provenance: a capture's JSON names the person's decision that let the words through."""
    import numpy as np

    from installation.control import show_control
    from installation.core.messages import GeneratedFrame, GenerationParams

    monkeypatch.setattr(show_control, "CAPTURES_DIR", tmp_path / "captures")  # read when the control is made
    host, ctl = curated()
    words = ctl.hold_words("a red fox", "빨간 여우")
    send(ctl, "/jadong/queue/approve", words.id)
    prompt = host.prompts[-1]
    assert prompt.approved_by == f"approve by {WHO}"
    ctl.from_speech("a blue whale", caption="a blue whale")  # waits: the painted prompt is unchanged
    assert host.prompts[-1].approved_by == f"approve by {WHO}"
    host.screen.current_frame = GeneratedFrame(image=np.zeros((8, 8, 3), np.uint8), prompt=prompt,
                                               params=GenerationParams(), generator="preview", model="")
    path = ctl.capture(None)
    assert ctl.captures.flush()  # written off the main thread (control/archive.py)
    record = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert record["approved_by"] == f"approve by {WHO}"
    send(ctl, "/jadong/prompt", "a lighthouse")  # a performer's words need no approval
    assert host.prompts[-1].approved_by == ""
