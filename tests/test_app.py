"""The whole loop, end to end: the default show with its demo inputs, headless, recorded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.udp_client import SimpleUDPClient

from installation.app import App, RunOptions
from installation.show import load_show
from media import read_video

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """One headless run of the default show with the demo inputs, recorded."""
    out = tmp_path_factory.mktemp("run")
    video, events = out / "out.mp4", out / "events.jsonl"
    proc = run_cli("--headless", "--seconds", "14", "--record", str(video), "--log", str(events),
                   "--osc-port", "0")
    return proc, video, events


def test_default_show_exits_cleanly(default_run):
    proc, video, events = default_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    records = read_events(events)
    stop = [r for r in records if r["event"] == "stop"]
    assert stop and stop[-1]["hung"] == []


def test_speech_becomes_transcript_and_prompt(default_run, project_root):
    _, _, events = default_run
    records = read_events(events)
    transcripts = [r for r in records if r["event"] == "transcript"]
    assert len(transcripts) == 1, transcripts
    words = transcripts[0]["text"].lower()
    # Not "fox": when the box is loaded (recording meanwhile) the speech thread falls behind, skips
    # decoding ahead, and tiny.en hears the whole utterance as "Red Fock, sliding through the
    # snowy forest" (seen on the code before and after the re-rooming alike). Accuracy is
    # measured in tests/speech/test_speech_wer.py; here the words only have to get through.
    for key in ("red", "snowy", "forest"):
        assert key in words, words
    prompts = [r for r in records if r["event"] == "prompt" and r["source"] == "speech"]
    assert prompts and prompts[0]["text"].lower().startswith(words.rstrip(".").split(",")[0][:10])
    assert "ink wash painting" in prompts[0]["text"]
    gens = [r for r in records if r["event"] == "generator"]
    assert gens and gens[0]["name"] == "preview"


def test_first_frame_within_five_seconds(default_run):
    _, _, events = default_run
    first = [r for r in read_events(events) if r["event"] == "frame" and r.get("first")]
    assert first and first[0]["seconds_since_start"] < 5.0, first


def test_recording_shows_caption_and_changes_after_speech(default_run):
    _, video, events = default_run
    records = read_events(events)
    start = next(r for r in records if r["event"] == "start")["mono"]
    spoken = next(r for r in records if r["event"] == "transcript")["mono"] - start
    _, frames, fps = read_video(video)
    assert len(frames) > fps * 8
    h = frames[0].shape[0]
    before = frames[int(fps * max(spoken - 1.0, 0.5))]
    after = frames[min(int(fps * (spoken + 2.0)), len(frames) - 1)]
    # The picture itself changes with the new prompt...
    top = slice(0, int(h * 0.6))
    assert np.abs(before[top].astype(int) - after[top].astype(int)).mean() > 5
    # ...and a caption appears in the bottom band.
    band = slice(int(h * 0.8), h)
    assert np.abs(before[band].astype(int) - after[band].astype(int)).mean() > 5


def test_tiny_model_runs_through_the_diffusers_path(tmp_path):
    model = tmp_path / "tiny"
    made = run_cli("tiny-model", str(model))
    assert made.returncode == 0, made.stderr
    events = tmp_path / "events.jsonl"
    proc = run_cli("--headless", "--seconds", "20", "--model", str(model), "--mic", "none",
                   "--log", str(events), "--osc-port", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_events(events)
    gens = [r for r in records if r["event"] == "generator"]
    # "diffusers" is the per-frame pipeline, "stream" the streaming engine on the same
    # diffusers components: both are the real model path, not the preview.
    real = ("diffusers", "stream")
    assert any(g["name"] in real and g.get("model") == str(model) for g in gens), gens
    presented = [r for r in records if r["event"] == "presented" and r["generator"] in real]
    assert presented, "no frame from the diffusers path reached the screen"


def test_broken_show_file_exits_with_clear_message(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[generator]\nsteps = 'many'\n")
    proc = run_cli(str(bad), "--headless", "--seconds", "1")
    assert proc.returncode == 2
    assert f"{bad}: generator.steps: expected an integer from 1 to 50, got 'many'" in proc.stderr
    assert "Traceback" not in proc.stderr


def _app(tmp_path, **show_changes) -> App:
    show = load_show()
    show = show.model_copy(deep=True)
    show.display.mode = "headless"
    show.osc.port = 0
    show.microphone.source = "none"
    show.camera.paced = True
    # A time limit, so a failure to start the OSC sender ends the test instead of hanging it.
    return App(show, RunOptions(log_path=tmp_path / "events.jsonl", seconds=60))


def test_osc_quit_stops_everything(tmp_path, no_thread_leak):
    app = _app(tmp_path)

    def send_quit():
        deadline = time.monotonic() + 20
        while ((app.osc is None or app.presenter is None or app.presenter.first_frame_t is None)
               and time.monotonic() < deadline):
            time.sleep(0.05)
        client = SimpleUDPClient("127.0.0.1", app.osc.port)
        client.send_message("/jadong/prompt", "a lighthouse in a storm")
        time.sleep(0.5)
        client.send_message("/jadong/quit", [])

    sender = threading.Thread(target=send_quit)
    sender.start()
    assert app.run() == 0
    sender.join()
    records = read_events(tmp_path / "events.jsonl")
    assert any(r["event"] == "prompt" and r["text"] == "a lighthouse in a storm" for r in records)
    assert any(r["event"] == "quit" and r["source"] == "osc" for r in records)


def test_sigterm_shuts_down_cleanly(tmp_path):
    events = tmp_path / "events.jsonl"
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--headless", "--osc-port", "0",
                             "--log", str(events)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if events.exists() and any(r["event"] == "frame" for r in read_events(events)):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    records = read_events(events)
    assert any(r["event"] == "signal" and r["signal"] == "SIGTERM" for r in records)
    assert records[-1]["event"] == "stop" and records[-1]["hung"] == []


def test_the_hud_says_the_preview_has_no_model(tmp_path):
    """Issue #15: the HUD said "model -" for the preview generator."""
    app = _app(tmp_path)
    app.show.generator.kind = "preview"
    app._build_generator()
    line = next(x for x in app.hud_lines() if x.startswith("generator ") and "/s" not in x)
    assert line.endswith("no model (preview)") and "model -" not in line
    app.events.close()


def test_a_prompt_storm_over_osc_is_summarised_in_the_event_log(tmp_path):
    """Issue #15: 1,000 OSC prompts wrote a line each; after the first 20 in 10 s they are
    counted in one `prompt_flood` line."""
    from installation.core.messages import Prompt

    app = _app(tmp_path)
    for i in range(200):
        app.publish_prompt(Prompt(text=f"storm {i}", source="osc"))
    app.publish_prompt(Prompt(text="a visitor's words", source="speech"))
    app.shutdown()
    records = read_events(tmp_path / "events.jsonl")
    prompts = [r for r in records if r["event"] == "prompt"]
    assert len([r for r in prompts if r["source"] == "osc"]) == 20
    assert any(r["source"] == "speech" for r in prompts)  # visitors' words are never summarised
    flood = [r for r in records if r["event"] == "prompt_flood"]
    assert flood and flood[0]["suppressed"] == 180
