"""The optional captioning model (#10): a tiny random-weight BLIP and GIT, written by the same
`save_pretrained` a real model was, loaded by `load_captioner` and run on a real photograph;
what happens when the model is absent; what `check` says and what `fetch-models` would fetch
(the network is never asked: conftest sets HF_HUB_OFFLINE)."""

from __future__ import annotations

import json
import re
import shutil

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from installation.show import parse_show
from installation.tools import Wanted, _wanted_captioner, check_captioner, run_checks
from installation.vision import captioner as captioner_module
from installation.vision.captioner import (
    DEFAULT_CAPTIONER,
    MAX_CAPTION_CHARS,
    clean_caption,
    load_captioner,
    locate_captioner,
)
from installation.vision.tiny_captioner import SPECIAL_TOKENS, WORDS, write_tiny_captioner


@pytest.fixture(scope="module")
def astronaut_bgr() -> np.ndarray:
    """A real photograph scikit-image ships (Eileen Collins, NASA, public domain), as the camera gives frames."""
    data = pytest.importorskip("skimage.data", reason="scikit-image ships the astronaut photograph (make setup)")
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    return write_tiny_captioner(tmp_path_factory.mktemp("tiny-blip"), "blip")


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("JADONG_ALLOW_DOWNLOAD", raising=False)
    return cache


def vision_show(tmp_path, **vision):
    """A show that runs anywhere (preview, no camera, no speech, headless) with [vision] as given."""
    data = {"generator": {"kind": "preview"}, "camera": {"source": "none"}, "speech": {"enabled": False},
            "display": {"mode": "headless"}, "osc": {"port": 0}, "vision": {"enabled": True, **vision}}
    return parse_show(data, tmp_path / "test.toml")


# --- end to end: a tiny random-weight model through the real loading code -------------------


@pytest.mark.parametrize("family", ["blip", "git"])
def test_a_tiny_captioner_loads_like_the_real_one_and_captions_a_photograph(tmp_path, family, astronaut_bgr):
    folder = write_tiny_captioner(tmp_path / family, family)
    assert (folder / "model.safetensors").is_file() and json.loads((folder / "config.json").read_text())[
        "model_type"] == family
    captioner, why = load_captioner(str(folder), device="cpu")
    assert captioner is not None, why
    assert captioner.family == family.upper() and captioner.device == "cpu"
    assert str(folder) in why and "on cpu" in why and "parameters" in why
    text = captioner.caption(astronaut_bgr)
    # Random weights say random words, but only the vocabulary's, cleaned and bounded.
    assert isinstance(text, str) and 0 < len(text) <= MAX_CAPTION_CHARS
    assert text == text.lower() == clean_caption(text)
    words = text.replace(",", "").split()
    assert set(words) <= set(WORDS) - {"arafed"}, words
    assert not text.startswith(("there is", "there are")) and not any(t.lower() in text for t in SPECIAL_TOKENS)
    assert captioner.caption(astronaut_bgr) == text  # greedy: the same frame, the same words


def test_the_tiny_writer_names_the_families_it_writes(tmp_path):
    with pytest.raises(ValueError, match="'blip' or 'git'"):
        write_tiny_captioner(tmp_path, "florence2")


def test_frames_of_any_camera_shape_are_captioned_and_anything_else_is_refused(tiny_blip, astronaut_bgr):
    captioner, why = load_captioner(str(tiny_blip), device="cpu")
    assert captioner is not None, why
    big = cv2.resize(astronaut_bgr, (1920, 1080))  # a 1080p frame is shrunk first
    grey = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2BGRA)
    for frame in (big, grey, bgra, astronaut_bgr[:, :, :1]):
        assert 0 < len(captioner.caption(frame)) <= MAX_CAPTION_CHARS
    for bad, says in ((np.zeros((0, 0, 3), np.uint8), "expected a BGR image"),
                      (np.zeros((8, 8, 2), np.uint8), "expected a BGR image"),
                      (astronaut_bgr.astype(np.float32), "expected uint8"),
                      ("frame.png", "expected a BGR image")):
        with pytest.raises(ValueError, match=says):
            captioner.caption(bad)  # type: ignore[arg-type]


# --- absent: None and one line that says why and what to do ---------------------------------


def test_an_absent_captioner_is_none_and_a_reason(tmp_path, empty_cache):
    assert load_captioner("") == (None, 'no captioner configured (vision.captioner = ""): {scene} stays empty, '
                                        "the scene words alone")
    captioner, why = load_captioner("jadong-test/not-fetched")
    assert captioner is None and "jadong-test/not-fetched is not downloaded" in why and str(empty_cache) in why
    assert "python run.py fetch-models" in why
    captioner, why = load_captioner(str(tmp_path / "no-such-folder"))
    assert captioner is None and f"folder {tmp_path / 'no-such-folder'} does not exist" in why
    assert "fetch-models" not in why


def test_an_incomplete_or_foreign_folder_is_named_not_loaded(tmp_path, tiny_blip):
    partial = shutil.copytree(tiny_blip, tmp_path / "partial")
    (partial / "model.safetensors").unlink()
    captioner, why = load_captioner(str(partial))
    assert captioner is None and "lacks its weights" in why and "incomplete" in why
    foreign = shutil.copytree(tiny_blip, tmp_path / "foreign")
    (foreign / "config.json").write_text(json.dumps({"model_type": "florence2"}))
    captioner, why = load_captioner(str(foreign))
    assert captioner is None and "'florence2' model" in why and "BLIP or GIT" in why
    (foreign / "config.json").write_text("{not json")
    assert "cannot be read as JSON" in load_captioner(str(foreign))[1]


def test_broken_weights_are_one_line_not_a_traceback(tmp_path, tiny_blip):
    broken = shutil.copytree(tiny_blip, tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    captioner, why = load_captioner(str(broken))
    assert captioner is None and why.startswith(f"vision.captioner {broken} could not be loaded (")
    assert "\n" not in why


def test_a_hub_captioner_in_the_cache_is_found_there(tmp_path, tiny_blip, empty_cache):
    """The layout huggingface_hub writes: models--owner--name/snapshots/<commit>/ and refs/main."""
    repo = empty_cache / "models--jadong-test--tiny-blip"
    shutil.copytree(tiny_blip, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    files, why = locate_captioner("jadong-test/tiny-blip")
    assert files is not None and files.family == "BLIP" and files.where == "the Hugging Face cache", why
    captioner, why = load_captioner("jadong-test/tiny-blip", device="cpu")
    assert captioner is not None and captioner.ref == "jadong-test/tiny-blip", why
    (repo / "snapshots" / ("0" * 40) / "vocab.txt").unlink()
    (repo / "snapshots" / ("0" * 40) / "tokenizer.json").unlink()
    files, why = locate_captioner("jadong-test/tiny-blip")
    assert files is None and "only partly in the Hugging Face cache" in why and "lacks its tokenizer" in why


def test_downloads_allowed_but_impossible_is_still_one_line(empty_cache, monkeypatch):
    """JADONG_ALLOW_DOWNLOAD=1 lets a show fetch at start-up; offline, that fails in words."""
    monkeypatch.setenv("JADONG_ALLOW_DOWNLOAD", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    captioner, why = load_captioner("jadong-test/not-fetched")
    assert captioner is None and "is not downloaded" in why and "downloading it now failed too" in why
    assert "\n" not in why


# --- cleaning: what a real BLIP says, and any text at all -----------------------------------


@pytest.mark.parametrize("said, phrase", [
    ("arafed man in a suit and tie", "man in a suit and tie"),
    ("there is a arafed woman sitting on a bench on a bench", "a woman sitting on a bench"),
    ("an arafed elephant standing in a field", "an elephant standing in a field"),
    ("araffe", ""),
    ("there is an arafed image of a man standing", "a man standing"),
    ("A picture of a dog with a red ball of", "a dog with a red ball"),
    ("[CLS] a cat <s> on THE_mat!! [SEP]", "a cat on the mat"),
    ("two people people walking down a street", "two people walking down a street"),
    ("- There is a man.", "a man"),  # a lead-in behind punctuation is a lead-in too
])
def test_captions_are_cleaned_of_blip_boilerplate(said, phrase):
    assert clean_caption(said) == phrase


def test_long_captions_are_cut_at_a_word_and_never_dangle():
    text = clean_caption(" ".join(["a woman in a red coat", "and a man with a blue hat", "near a wall"] * 5))
    assert len(text) <= MAX_CAPTION_CHARS and not text.endswith((" a", " and", " with", " near a"))
    assert clean_caption("x" * 500) == ""  # one 500-letter "word" is no caption


@settings(max_examples=200, deadline=None, database=None)
@given(st.text(max_size=400))
def test_any_text_cleans_to_a_short_lowercase_phrase(text):
    phrase = clean_caption(text)
    assert len(phrase) <= MAX_CAPTION_CHARS and phrase == phrase.lower() and phrase == phrase.strip()
    assert not re.search(r"\bar+af+", phrase) and not phrase.startswith(("there is ", "there are "))
    assert not re.search(r"[\[\]<>{}\n]", phrase)
    assert clean_caption(phrase) == phrase  # cleaning a clean phrase changes nothing


# --- check --------------------------------------------------------------------------------


def test_check_reports_the_captioner_ok_absent_or_not_configured(tmp_path, tiny_blip, empty_cache):
    off = check_captioner(vision_show(tmp_path, enabled=False))
    assert [(r.need, r.needed, r.detail) for r in off] == [("captioner", False, "not needed: vision.enabled = false")]
    (none,) = check_captioner(vision_show(tmp_path))
    assert not none.needed and not none.problem and 'vision.captioner = ""' in none.detail
    (ok,) = check_captioner(vision_show(tmp_path, captioner=str(tiny_blip), caption_every_s=12))
    assert ok.ok and not ok.problem and f"{tiny_blip} found (BLIP, folder {tiny_blip})" in ok.detail
    assert "a caption every 12 s" in ok.detail

    missing, licence = check_captioner(vision_show(tmp_path, captioner=DEFAULT_CAPTIONER), "scene")
    assert missing.problem and f"{DEFAULT_CAPTIONER} is not downloaded" in missing.detail
    assert "the scene words alone" in missing.detail and "fetch-models" not in missing.detail
    assert missing.remedy == "`python run.py fetch-models scene` gets it while online"
    assert licence.need == "captioner licence" and licence.detail.startswith("MIT")

    gone = tmp_path / "my-captioner"
    (folder,) = check_captioner(vision_show(tmp_path, captioner=str(gone)))
    assert folder.problem and f"{gone} does not exist" in folder.detail
    assert "fetch-models" not in folder.remedy and "correct vision.captioner" in folder.remedy

    # run_checks asks it too, in its place among the models
    needs = [r.need for r in run_checks(vision_show(tmp_path, captioner=str(tiny_blip)))]
    assert needs.index("speech model") < needs.index("captioner") < needs.index("camera")


# --- fetch-models -------------------------------------------------------------------------


def test_fetch_models_fetches_a_hub_captioner_and_never_a_folder(tmp_path, tiny_blip, empty_cache, monkeypatch):
    assert _wanted_captioner(vision_show(tmp_path)) == []
    assert _wanted_captioner(vision_show(tmp_path, enabled=False, captioner=DEFAULT_CAPTIONER)) == []

    fetched: list[str] = []
    monkeypatch.setattr(captioner_module, "fetch_captioner",
                        lambda ref, cache_dir=None: fetched.append(ref) or tmp_path / "snapshot")
    (hub,) = _wanted_captioner(vision_show(tmp_path, captioner=DEFAULT_CAPTIONER))
    assert isinstance(hub, Wanted) and hub.what == "captioner" and not hub.present and not hub.problem
    assert hub.fetch() == f"fetched to {tmp_path / 'snapshot'}" and fetched == [DEFAULT_CAPTIONER]

    (here,) = _wanted_captioner(vision_show(tmp_path, captioner=str(tiny_blip)))
    assert here.present and not here.problem
    (gone,) = _wanted_captioner(vision_show(tmp_path, captioner=str(tmp_path / "nowhere")))
    assert not gone.present and "does not exist" in gone.problem and "a folder is the show's own" in gone.problem
    assert fetched == [DEFAULT_CAPTIONER]


def test_fetch_captioner_refuses_offline_and_folders_in_words(empty_cache, tmp_path):
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE is set"):
        captioner_module.fetch_captioner(DEFAULT_CAPTIONER)
    with pytest.raises(ValueError, match="not a Hugging Face id"):
        captioner_module.fetch_captioner(str(tmp_path))
