"""The words pipeline: what the speech stage heard becomes a caption and the words to paint.
Partials change only the caption; a retraction brings the caption from before back;
moderation decides before anything reaches the screen or the prompt. Then the whole way
through the app, from the transcripts channel to the prompt the generator paints."""

from __future__ import annotations

import json
from pathlib import Path

from installation.app import App, RunOptions
from installation.core.messages import CaptionRetraction, Transcript
from installation.show import ModerationConfig, parse_show
from installation.speech.moderation import Moderator
from installation.speech.words import HeardWords, WordsPipeline


class Events(list):
    def __call__(self, event: str, **fields) -> None:
        self.append((event, fields))

    def names(self) -> list[str]:
        return [e for e, _ in self]


def test_partials_change_the_caption_and_a_retraction_takes_it_back():
    events = Events()
    words = WordsPipeline(None, events)
    assert words.take(Transcript(text="a red", final=False), "the last visitor's words") == HeardWords(caption="a red")
    assert words.take(Transcript(text="a red fox.", final=False), "a red") == HeardWords(caption="a red fox")
    assert words.take(CaptionRetraction(), "a red fox") == HeardWords(caption="the last visitor's words")
    # Nothing to take back any more: the caption stays.
    assert words.take(CaptionRetraction(), "the last visitor's words") == HeardWords()
    assert events.names() == ["partial", "partial"]


def test_a_final_transcript_becomes_words_to_paint():
    events = Events()
    words = WordsPipeline(None, events)
    words.take(Transcript(text="a blue", final=False), "before")
    heard = words.take(Transcript(text="A blue fox!", final=True, utterance_end_t=1.0, t=1.4), "a blue")
    assert heard == HeardWords(caption="A blue fox", words="A blue fox", transcript="A blue fox!")
    (event, fields), = [e for e in events if e[0] == "transcript"]
    assert fields["text"] == "A blue fox!" and fields["latency_s"] == 0.4
    assert words.take(CaptionRetraction(), "A blue fox") == HeardWords()  # the final closed the partial


def test_caption_in_the_visitors_language_prompt_in_english():
    heard = WordsPipeline(None).take(
        Transcript(text="눈 속의 빨간 여우", language="ko", english="A red fox in the snow.", final=True), "")
    assert heard == HeardWords(caption="눈 속의 빨간 여우", words="A red fox in the snow",
                               transcript="눈 속의 빨간 여우")


def test_moderation_replaces_listed_words_in_caption_and_prompt():
    events = Events()
    words = WordsPipeline(Moderator(ModerationConfig(action="replace", replacement="roses")), events)
    heard = words.take(Transcript(text="a fucking castle", final=True), "")
    assert heard.words == "a roses castle" and heard.caption == "a roses castle"
    (fields,) = [f for e, f in events if e == "moderated"]
    assert fields["action"] == "replace" and fields["words"] == ["fucking"]
    assert "fucking" not in json.dumps([f for e, f in events if e == "transcript"])


def test_moderation_drop_shows_nothing_and_restores_the_caption():
    events = Events()
    words = WordsPipeline(Moderator(ModerationConfig(action="drop")), events)
    assert words.take(Transcript(text="개새끼", final=False), "before") == HeardWords()  # not even a partial
    assert words.take(Transcript(text="a red", final=False), "before") == HeardWords(caption="a red")
    heard = words.take(Transcript(text="개새끼가 보여요", language="ko", english="I see a bastard", final=True),
                       "a red")
    assert heard == HeardWords(caption="before")
    assert events.names() == ["partial", "moderated"]
    assert [f["words"] for e, f in events if e == "moderated"] == [["개새끼가", "bastard"]]


def test_noise_words_paint_nothing():
    assert WordsPipeline(None).take(Transcript(text=" ... ", final=True), "x") == HeardWords()
    assert WordsPipeline(None).take(Transcript(text="", final=False), "x") == HeardWords()


def test_the_app_paints_what_it_heard(tmp_path: Path):
    """From the transcripts channel through the pipeline and the show control to the prompt slot."""
    show = parse_show({"microphone": {"source": "none"}, "camera": {"source": "none"},
                       "generator": {"kind": "preview"}, "display": {"mode": "headless"},
                       "osc": {"enabled": False}, "prompt": {"template": "{speech}, ink"},
                       "moderation": {"action": "replace", "replacement": "roses"}}, tmp_path / "show.toml")
    app = App(show, RunOptions(log_path=tmp_path / "events.jsonl"))
    app._build_speech()  # no microphone: only the moderator is built
    app.control.set_caption("the last visitor's words")
    before = app.prompt_slot.get()
    app.handle_transcript(Transcript(text="a red", final=False))
    assert app.state.caption_text == "a red" and app.prompt_slot.get() == before
    app.handle_transcript(CaptionRetraction())
    assert app.state.caption_text == "the last visitor's words"
    app.handle_transcript(Transcript(text="a fucking castle", final=True))
    painted = app.prompt_slot.get()
    assert painted.text == "a roses castle, ink" and painted.source == "speech" and painted.caption == "a roses castle"
    assert app.state.last_transcript == "a roses castle" and app.state.caption_text == "a roses castle"
    app.events.close()
    names = [json.loads(x)["event"] for x in Path(app.events.path).read_text(encoding="utf-8").splitlines()]
    assert names.count("partial") == 1 and names.count("moderated") == 1 and names.count("transcript") == 1
