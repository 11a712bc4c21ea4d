"""Scene words in prompts: the show's vocabulary, empty placeholders, the pace of change, and
the visitor's words never overridden unless the show says so."""

from __future__ import annotations

from pathlib import Path

from control.test_control import RecordingHost
from installation.control.scene_words import count_word, fill_template, scene_words
from installation.control.show_control import ShowControl
from installation.core.messages import GenerationParams, Scene
from installation.show import SceneWordsConfig, parse_show

TEMPLATE = "{speech}, {people} figures in {colours}, {motion}"


def scene(people: int = 2, colours=("red", "blue"), light="bright", motion="calm", presence=True) -> Scene:
    return Scene(presence=presence, people=people, colours=tuple(colours), light=light, motion=motion)


def control(**scene_cfg) -> tuple[ShowControl, RecordingHost]:
    show = parse_show({"vision": {"enabled": True},
                       "prompt": {"template": TEMPLATE, "initial": "an empty stage"},
                       "scene": {"change_every_s": 5.0, **scene_cfg}}, Path("scene.toml"))
    host = RecordingHost()
    return ShowControl(show, host, GenerationParams()), host


def test_scene_words_use_the_shows_vocabulary():
    cfg = SceneWordsConfig(vocabulary={"colours": {"red": "vermilion"}, "people": {"1": "a lone"},
                                       "light": {"dark": "moonlit"}})
    words = scene_words(scene(people=1, colours=("red", "green", "blue"), light="dark"), cfg)
    assert (words.people, words.colours, words.light, words.motion) == ("a lone", "vermilion and green", "moonlit",
                                                                        "calm")
    assert scene_words(None, cfg).values() == {"people": "", "colours": "", "light": "", "motion": "", "scene": ""}
    assert [count_word(n) for n in (0, 1, 3, 10, 11)] == ["", "one", "three", "ten", "many"]
    crowd = SceneWordsConfig(vocabulary={"people": {"many": "a crowd", "four": "a quartet"}})
    assert scene_words(scene(people=14), crowd).people == "a crowd"
    assert scene_words(scene(people=4), crowd).people == "a quartet"


def test_an_empty_placeholder_leaves_its_clause_out_or_takes_the_shows_word():
    values = {"speech": "", "people": "two", "colours": "", "motion": "calm"}
    assert fill_template(TEMPLATE, values) == "calm"
    values["colours"] = "red"
    assert fill_template(TEMPLATE, values) == "two figures in red, calm"
    assert fill_template(TEMPLATE, values, {"speech": "a quiet square"}) == "a quiet square, two figures in red, calm"
    assert fill_template("{speech}, {{literal}} braces", {"speech": "fox"}) == "fox, {literal} braces"


def test_the_prompt_follows_the_scene_before_anyone_speaks():
    ctl, host = control()
    assert ctl.from_scene(scene(), now=100.0)
    assert host.prompts[-1].text == "two figures in red and blue, calm" and host.prompts[-1].source == "scene"


def test_the_scene_changes_the_prompt_at_most_every_change_every_s():
    ctl, host = control()
    ctl.from_scene(scene(people=1), now=100.0)
    assert not ctl.from_scene(scene(people=2), now=102.0)  # too soon: held back
    assert host.prompts[-1].text.startswith("one figures")
    assert ctl.from_scene(scene(people=2), now=105.5)
    assert host.prompts[-1].text.startswith("two figures")
    assert not ctl.from_scene(scene(people=2), now=200.0)  # nothing new: no repaint


def test_a_visitors_words_are_not_overridden_unless_the_show_says_so():
    ctl, host = control()
    ctl.from_scene(scene(people=1), now=100.0)
    ctl.from_speech("a red fox", caption="a red fox")
    assert host.prompts[-1].text == "a red fox, one figures in red and blue, calm"
    assert not ctl.from_scene(scene(people=3), now=200.0)
    assert host.prompts[-1].text == "a red fox, one figures in red and blue, calm"

    ctl, host = control(over_speech=True)
    ctl.from_scene(scene(people=1), now=100.0)
    ctl.from_speech("a red fox", caption="a red fox")
    assert ctl.from_scene(scene(people=3), now=200.0)
    assert host.prompts[-1].text == "a red fox, three figures in red and blue, calm"
    assert host.prompts[-1].source == "speech" and host.prompts[-1].caption == "a red fox"


def test_a_show_without_scene_placeholders_ignores_the_scene():
    show = parse_show({"vision": {"enabled": True}, "prompt": {"template": "{speech}, woodcut", "initial": "dawn"}},
                      Path("plain.toml"))
    host = RecordingHost()
    ctl = ShowControl(show, host, GenerationParams())
    assert not ctl.from_scene(scene(), now=100.0)
    assert host.prompts == [] and ctl.state.prompt.text == "dawn"


def test_status_carries_presence_people_and_the_scene_words():
    ctl, _ = control()
    ctl.from_scene(scene(people=2), now=100.0)
    status = dict(ctl.status_values())
    assert status["/jadong/status/presence"] == (1,) and status["/jadong/status/people"] == (2,)
    assert status["/jadong/status/scene"] == ("two people · red and blue · bright · calm",)


def test_the_scene_caption_names_the_colours_in_the_captions_language():
    show = parse_show({"vision": {"enabled": True}, "speech": {"language": "ko", "model": "base"},
                       "prompt": {"template": "{speech}, {colours}", "initial": "dawn"},
                       "scene": {"caption": True}}, Path("ko.toml"))
    host = RecordingHost()
    ctl = ShowControl(show, host, GenerationParams())
    ctl.from_scene(scene(colours=("red", "blue")), now=100.0)
    assert host.prompts[-1].text == "red and blue"  # the prompt in English
    assert ctl.state.caption_text == "빨간색 · 파란색"  # the caption in Korean
