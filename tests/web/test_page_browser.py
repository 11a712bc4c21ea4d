"""The operator's page in a real browser (issue #14): Debian's Chromium, headless, driven by
selenium through Debian's chromium-driver, against a real App serving the page on 127.0.0.1.

One quick show (live_app.page_show) serves the first tests, in order: sign-in (a wrong password
refused), preview and prompt, a GO click, the last errors, a phone-size screenshot, the warning
while the generator stalls. The curated show gets its own App (a microphone playing espeak-ng
speech, tiny.en listening): words wait in the page's queue, an approval clicked on the page
paints them, a rejection never does, and the timeout decides the words nobody touched. The show
runs on a background thread and the browser on the test's thread: see live_app.py for why.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from installation import web_bridge
from installation.show import Show
from media import wishes_wav
from test_curation_e2e import curated_show as e2e_curated_show
from web.live_app import PASSWORD, LiveApp, page_show, stalled_generator, start_app

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("JADONG_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("JADONG_CHROMEDRIVER", "/usr/bin/chromedriver")
PHONE = (390, 844)  # CSS pixels: a common phone held upright
DESKTOP = (1024, 1400)  # tall, so the queue's buttons are on screen without scrolling


# --- the browser ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in requirements-dev.txt "
                                    "(scripts/setup.sh installs it)")
    from selenium.webdriver.chrome.service import Service

    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.skip(f"no {' or '.join(missing)}: install Debian's chromium and chromium-driver "
                    "(scripts/setup.sh does), or point JADONG_CHROMIUM / JADONG_CHROMEDRIVER at them")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
                "--no-first-run", "--disable-extensions", "--disable-sync", "--disable-component-update",
                "--disable-background-networking", "--disable-default-apps",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):  # only the page's server is reachable
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def wait(driver: Any, found: Callable[[Any], Any], what: str, seconds: float = 10.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.05).until(found, message=f"{what} (within {seconds:g} s)")


def by_id(driver: Any, element_id: str) -> Any:
    return driver.find_element("id", element_id)


def shown(driver: Any, element_id: str) -> bool:
    found = driver.find_elements("id", element_id)
    return bool(found) and found[0].is_displayed()


def text_of(driver: Any, element_id: str) -> str:
    return str(driver.execute_script("const e = document.getElementById(arguments[0]); return e ? e.textContent : null",
                                     element_id))


def click(driver: Any, element: Any) -> None:
    """A real click, with the element first scrolled to the middle (the sticky header never covers it)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def sign_in(driver: Any, live: LiveApp) -> None:
    """The page of `live`, signed in (a reload keeps the password for the tab, per origin)."""
    if not driver.current_url.startswith(live.url):
        driver.get(live.url)
    wait(driver, lambda d: shown(d, "login") or shown(d, "main"), "the page shows sign-in or the show")
    if shown(driver, "login"):
        field = by_id(driver, "password")
        field.clear()
        field.send_keys(PASSWORD)
        click(driver, by_id(driver, "login-button"))
    wait(driver, lambda d: shown(d, "main"), "the show's page after signing in")
    wait(driver, lambda d: text_of(d, "connection") == "live", "the live updates connected")


PREVIEW_JS = """
const img = document.getElementById('preview');
if (!img.complete || !img.naturalWidth) return null;
const r = img.getBoundingClientRect();
return {src: img.src, nw: img.naturalWidth, nh: img.naturalHeight, x: r.left, y: r.top, w: r.width, h: r.height};
"""


def preview_shown(driver: Any) -> dict[str, Any] | None:
    return driver.execute_script(PREVIEW_JS)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    tmp = tmp_path_factory.mktemp("page")
    running = start_app(page_show(tmp / "page-test.toml"), tmp / "events.jsonl")
    yield running
    running.stop()


# --- the quick show --------------------------------------------------------------------------
def test_the_page_loads_refuses_a_wrong_password_and_signs_in_with_the_right_one(browser, live):
    web = live.app.web
    browser.get(live.url)
    wait(browser, lambda d: shown(d, "login"), "the sign-in form")
    assert not shown(browser, "main")
    assert browser.title.startswith("Jadong")

    refused, failures = web.counters.requests["403"], web.counters.auth_failures
    by_id(browser, "password").send_keys("not the password")
    click(browser, by_id(browser, "login-button"))
    wait(browser, lambda d: text_of(d, "login-error") == "Wrong password.", "the page says the password is wrong")
    # The server refused it (403, counted as a wrong password), and the page kept nothing.
    wait(browser, lambda d: web.counters.requests["403"] > refused, "the server's 403 answer")
    assert web.counters.auth_failures == failures + 1
    assert not shown(browser, "main")
    assert browser.execute_script("return sessionStorage.getItem('jadong.password')") is None

    sign_in(browser, live)
    assert not shown(browser, "login")
    assert text_of(browser, "show") == "page-test"


def test_the_preview_shows_the_screen_and_the_prompt_is_the_one_painted(browser, live):
    sign_in(browser, live)
    first = wait(browser, preview_shown, "the preview image decoded")
    frame = live.app.web_bridge.preview()
    assert (first["nw"], first["nh"]) == (frame.shape[1], frame.shape[0]) == (160, 96)
    # Live: the page fetches a new picture a few times a second (the preview drifts).
    wait(browser, lambda d: (preview_shown(d) or first)["src"] != first["src"], "a newer preview", seconds=5)
    prompt = live.app.state.prompt.text
    assert "roses" in prompt
    wait(browser, lambda d: text_of(d, "prompt") == live.app.state.prompt.text, f"the prompt {prompt!r} on the page")


def test_a_go_click_moves_to_the_first_cue_in_the_log_and_on_the_page(browser, live):
    sign_in(browser, live)
    assert text_of(browser, "cue") == "before the first cue"
    assert not [r for r in live.events() if r["event"] == "cue"]
    click(browser, by_id(browser, "go"))
    cue = live.wait_event(lambda r: r["event"] == "cue", 5.0, "a cue event after GO")
    assert (cue["number"], cue["name"]) == (1, "dawn")
    wait(browser, lambda d: text_of(d, "cue") == "1. dawn", "the page's cue")
    wait(browser, lambda d: "current" in by_id(d, "cue-1").get_attribute("class"), "cue 1 marked current")
    assert live.app.state.cue_index == 0
    wait(browser, lambda d: text_of(d, "prompt") == live.app.state.prompt.text and "blue" in text_of(d, "prompt"),
         "the cue's prompt on the page")


def test_the_last_errors_read_in_plain_words_with_what_to_do(browser, live):
    sign_in(browser, live)
    live.app.on_worker_error("camera", OSError("the test camera is unplugged"))  # as a camera worker reports it
    wait(browser, lambda d: shown(d, "errors") and not shown(d, "errors-none"), "the error on the page")
    item = by_id(browser, "errors").find_element("css selector", "li")
    assert "What to do: The camera or video input was lost" in item.text
    # The list is refreshed a few times a second (the error's age changes): after a few refreshes it
    # must still read "…unplugged 1 s ago", not "…unplugged1 s ago".
    time.sleep(1.0)
    head = item.find_element("css selector", "div").text
    assert re.fullmatch(r"camera: OSError: the test camera is unplugged \d+ s ago", head), head


# Elements that must fit a phone's width: what staff look at and what they press.
PHONE_ELEMENTS = ("top", "connection", "preview", "show", "cue", "prompt", "presence", "prev", "go", "cue-list",
                  "queue-section", "strength", "listen", "blackout", "capture", "show-select", "switch-show",
                  "restart", "rates", "generator", "health-section", "captures-section")
LAYOUT_JS = """
const out = {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, boxes: {}};
for (const id of arguments[0]) {
  const r = document.getElementById(id).getBoundingClientRect();
  out.boxes[id] = {left: r.left, right: r.right, width: r.width, height: r.height};
}
return out;
"""


def test_a_phone_size_screenshot_shows_the_frame_and_nothing_overflows(browser, live, tmp_path_factory):
    width, height = PHONE
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})
    try:
        browser.refresh()  # lays the page out afresh at phone size; the tab still holds the password
        sign_in(browser, live)
        box = wait(browser, preview_shown, "the preview at phone size")
        layout = browser.execute_script(LAYOUT_JS, list(PHONE_ELEMENTS))
        path = tmp_path_factory.mktemp("screenshots") / f"operator-page-{width}x{height}.png"
        assert browser.save_screenshot(str(path)), "the screenshot could not be taken"
        frame = live.app.web_bridge.preview()  # the frame the preview shows (it drifts over minutes)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    shot = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert shot.shape[:2] == (height, width), f"{path}: {shot.shape}"
    assert float(shot.std()) > 20.0, f"{path} looks blank (pixel std {shot.std():.1f})"

    # The preview box shows the frame, letterboxed (object-fit: contain) in black.
    scale = min(box["w"] / box["nw"], box["h"] / box["nh"])
    cw, ch = box["nw"] * scale, box["nh"] * scale
    x0, y0 = box["x"] + (box["w"] - cw) / 2, box["y"] + (box["h"] - ch) / 2
    inside = shot[round(y0) + 3:round(y0 + ch) - 3, round(x0) + 3:round(x0 + cw) - 3].reshape(-1, 3).astype(float)
    assert inside.size and y0 + ch <= height, f"{path}: the preview is not on the first screen ({box})"
    on_page, painted = inside.mean(axis=0), frame.reshape(-1, 3).astype(float).mean(axis=0)
    assert np.abs(on_page - painted).max() < 25.0, f"{path}: preview colours {on_page} vs the frame's {painted}"
    assert np.abs(on_page - 17.0).max() > 30.0, f"{path}: the preview region is the page's background"
    assert inside.std(axis=0).max() > 5.0, f"{path}: the preview region is flat, not a picture"
    if y0 - box["y"] >= 8:  # the letterbox above the picture is the box's black
        bar = shot[round(box["y"]) + 2:round(y0) - 2, round(x0) + 3:round(x0 + cw) - 3]
        assert float(bar.mean()) < 12.0, f"{path}: the letterbox is not black"

    # Nothing wider than the phone: no sideways scrolling, every control within the screen.
    assert layout["innerWidth"] == width
    assert layout["scrollWidth"] <= width, f"the page scrolls sideways: {layout['scrollWidth']} > {width}"
    for element_id, r in layout["boxes"].items():
        assert r["width"] > 0, f"#{element_id} is not laid out at phone size"
        assert r["left"] >= -0.5 and r["right"] <= width + 0.5, f"#{element_id} spills out: {r}"
    for element_id in ("go", "prev", "restart", "listen", "switch-show"):  # thumb-sized
        assert layout["boxes"][element_id]["height"] >= 44.0, f"#{element_id} is too small to tap"


def test_the_page_warns_while_the_generator_stalls_and_clears_the_warning_after(browser, live, monkeypatch):
    monkeypatch.setattr(web_bridge, "HEALTH_STALL_S", 1.0)  # a stall is 10 s in a show: 1 s here
    sign_in(browser, live)
    assert not shown(browser, "health")
    with stalled_generator(live.app):
        wait(browser, lambda d: shown(d, "health") and "the generator stage has not worked" in text_of(d, "health"),
             "the page's warning that the generator stalled")
    wait(browser, lambda d: not shown(d, "health"), "the warning gone once the generator works again")


# --- the curated show ------------------------------------------------------------------------
TIMEOUT_S = 6.0
# Approved, rejected, left to the timeout: as tests/test_curation_e2e.py, which also covers OSC.
WISHES = ["a red fox in the snow", "a small boat on a quiet lake", "a golden castle on a green hill"]


def speech_wav(tmp: Path) -> Path:
    """The three wishes with room tone and 2.5 s pauses between them, as one 16-bit WAV."""
    return wishes_wav(WISHES, tmp)


def curated_show(tmp: Path, wav: Path) -> Show:
    """tests/test_curation_e2e.py's curated show, with the page instead of OSC."""
    show = e2e_curated_show(tmp, wav)
    show.show.name, show.osc.enabled, show.web.password = "curated-page", False, PASSWORD
    show.curation.timeout_s = TIMEOUT_S
    return show


def nth_waiting(live: LiveApp, n: int, seconds: float = 25.0) -> dict[str, Any]:
    """The n-th (1-based) words heard and queued (`curation` events with state "waiting")."""
    def heard() -> list[dict[str, Any]]:
        return [r for r in live.events() if r["event"] == "curation" and r["state"] == "waiting"]

    live.wait_event(lambda r: len(heard()) >= n, seconds, f"wish {n} waiting")
    return heard()[n - 1]


def queued_on_page(driver: Any, words: dict[str, Any]) -> Any:
    """The page's queue item for `words`, once it is shown."""
    item_id = f"queue-item-{words['id']}"
    wait(driver, lambda d: shown(d, item_id), f"words {words['id']} ({words['text']!r}) in the page's queue")
    return by_id(driver, item_id)


def gone_from_page(driver: Any, words: dict[str, Any]) -> None:
    item_id = f"queue-item-{words['id']}"
    wait(driver, lambda d: not d.find_elements("id", item_id), f"words {words['id']} leave the page's queue")


def speech_prompts(live: LiveApp) -> list[dict[str, Any]]:
    return [r for r in live.events() if r["event"] == "prompt" and r["source"] == "speech"]


def test_curated_words_wait_on_the_page_an_approval_paints_a_rejection_does_not_the_timeout_decides(browser, tmp_path):
    live = start_app(curated_show(tmp_path, speech_wav(tmp_path)), tmp_path / "events.jsonl")
    try:
        sign_in(browser, live)

        # 1: heard, waiting on the page (the visitor's caption says so), not painted; approved there.
        first = nth_waiting(live, 1)
        item = queued_on_page(browser, first)
        assert first["caption"] in item.find_element("css selector", ".said").text
        assert "decided by itself in" in item.text
        wait(browser, lambda d: text_of(d, "words").endswith("…"), "the visitor's words shown as waiting")
        assert not speech_prompts(live)
        assert text_of(browser, "queue-count") == "(1)"
        click(browser, item.find_element("css selector", ".approve"))
        painted = live.wait_event(lambda r: r["event"] == "prompt" and r["source"] == "speech", 5.0, "approved prompt")
        assert painted["text"] == f"{first['text']}, woodcut"
        assert painted["approved_by"] == "approve by web"
        gone_from_page(browser, first)
        wait(browser, lambda d: text_of(d, "prompt") == painted["text"], "the approved words as the page's prompt")
        # tiny.en mishears espeak now and then: one word of the wish will do.
        assert set(re.findall(r"[a-z]+", first["text"].lower())) & {"red", "fox", "snow"}, first["text"]

        # 2: rejected on the page: dropped, never painted.
        second = nth_waiting(live, 2)
        click(browser, queued_on_page(browser, second).find_element("css selector", ".reject"))
        live.wait_event(lambda r: r.get("decision") == "reject" and r["id"] == second["id"], 5.0, "the rejection")
        gone_from_page(browser, second)

        # 3: nobody acts: the page counts down, then the show's timeout accepts and paints it.
        third = nth_waiting(live, 3)
        queued_on_page(browser, third)
        timed_out = live.wait_event(lambda r: r.get("decision") == "timeout-accept", TIMEOUT_S + 5.0, "the timeout")
        assert timed_out["id"] == third["id"] and timed_out["who"] == "timeout"
        assert timed_out["waited_s"] >= TIMEOUT_S
        gone_from_page(browser, third)
        live.wait_event(lambda r: r["event"] == "prompt" and r["text"] == f"{third['text']}, woodcut", 5.0,
                        "the timed-out words painted")
        wait(browser, lambda d: shown(d, "queue-empty"), "the page's queue empty again")
    finally:
        live.stop()

    records = live.events()
    decisions = {r["id"]: r for r in records if r["event"] == "curation" and r["state"] != "waiting"}
    assert (decisions[first["id"]]["decision"], decisions[first["id"]]["who"]) == ("approve", "web")
    assert (decisions[second["id"]]["decision"], decisions[second["id"]]["who"]) == ("reject", "web")
    assert decisions[second["id"]]["state"] == "dropped"
    # Only the approved and the timed-out words were painted, each after its decision.
    speech = [r for r in records if r["event"] == "prompt" and r["source"] == "speech"]
    assert [r["text"] for r in speech] == [f"{first['text']}, woodcut", f"{third['text']}, woodcut"]
    assert [r["approved_by"] for r in speech] == ["approve by web", "timeout-accept by timeout"]
    for prompt, words in zip(speech, (first, third)):
        assert decisions[words["id"]]["mono"] <= prompt["mono"]
    assert all(second["text"] not in r.get("text", "") for r in records if r["event"] in ("prompt", "presented"))
