"""Moderation: the show's word lists on whole words, in English and Korean, and the three
actions; what was matched is logged by the app and never shown."""

from __future__ import annotations

import pytest

from installation.show import ModerationConfig, ShowError, parse_show
from installation.speech.moderation import ModerationError, Moderator, list_path, read_list


def mod(**kw) -> Moderator:
    return Moderator(ModerationConfig(**kw))


def test_builtin_lists_exist_and_load(project_root):
    for code in ("en", "ko"):
        path = list_path(code)
        assert path == project_root / "assets" / "moderation" / f"{code}.txt"
        entries = read_list(path)
        assert len(entries) >= 10 and all(not e.startswith("#") for e in entries)


@pytest.mark.parametrize("text", [
    "a glass of water in the tall grass",  # "ass" inside words
    "a class assessment by the bass player",
    "Scunthorpe at dusk",  # the classic substring trap
    "a cocktail on a dickens novel",
    "shitake mushrooms",  # not a listed word, though it starts like one
    "고양이가 새끼줄을 물고 있어요",  # 새끼줄 (straw rope) is not 새끼
    "병신년 (1956) 의 달력",  # a year name shares letters, but is a different word
])
def test_clean_text_passes_untouched(text):
    m = mod()
    assert m.find(text) == []
    out = m.apply(text)
    assert out.text == text and not out.flagged and not out.dropped


@pytest.mark.parametrize("text, hit", [
    ("what the fuck is that", "fuck"),
    ("WHAT THE FUCK", "FUCK"),
    ("you ass.", "ass"),
    ("Motherfucker!", "Motherfucker"),  # one hit for the longer word, not "fucker" inside it
    ("kill   yourself now", "kill   yourself"),  # phrases match across any spacing
    ("병신", "병신"),
    ("저 병신이 웃어요", "병신이"),  # a particle attached to the noun
    ("개새끼를 그려줘", "개새끼를"),
    ("좆같은 하늘", "좆같은"),  # a "*" entry: every word starting so
])
def test_listed_words_match_whole_words(text, hit):
    assert mod().find(text) == [hit]


def test_the_three_actions():
    text = "a fucking castle on a hill"
    flagged = mod(action="flag").apply(text)
    assert flagged.text == text and flagged.hits == ("fucking",) and not flagged.dropped
    replaced = mod(action="replace", replacement="golden").apply(text)
    assert replaced.text == "a golden castle on a hill" and replaced.hits == ("fucking",)
    dropped = mod(action="drop").apply(text)
    assert dropped.dropped and dropped.text == "" and dropped.hits == ("fucking",)


def test_one_decision_for_caption_and_english():
    texts, hits, dropped = mod(action="drop").apply_all("개새끼가 짖어요", "a puppy barks")
    assert dropped and texts == ["", ""] and hits == ("개새끼가",)
    texts, hits, dropped = mod(action="replace", replacement="cat").apply_all("씨발 고양이", "fucking cat")
    assert not dropped and texts == ["cat 고양이", "cat cat"] and len(hits) == 2


def test_show_words_extra_and_allowed(tmp_path):
    m = mod(extra_words=["clown", "광대"], allow_words=["ass"])
    assert m.find("a clown and a 광대가") == ["clown", "광대가"]
    assert m.find("you ass") == []
    own = tmp_path / "venue.txt"
    own.write_text("# the venue's own list\nsponsor name\n\n", encoding="utf-8")
    assert mod(lists=[str(own)]).find("thanks to SPONSOR NAME today") == ["SPONSOR NAME"]
    assert mod(enabled=False).find("fuck") == []


def test_a_missing_list_names_the_file_and_the_builtin_lists():
    with pytest.raises(ModerationError, match=r"no such word list .*built-in lists: en, ko"):
        mod(lists=["xx"])


def test_show_config_is_checked():
    show = parse_show({"moderation": {"action": "drop", "extra_words": ["clown"]}})
    assert show.moderation.action == "drop"
    with pytest.raises(ShowError, match=r"moderation\.action: expected one of"):
        parse_show({"moderation": {"action": "erase"}})
