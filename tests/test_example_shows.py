"""Every example show in shows/ runs headless for a few seconds and presents frames (issue #12,
"What must show"). Shows with `kind = "auto"` paint with the labelled preview where their model
is not downloaded (as on a fresh machine); a show that insists on diffusers (`kind =
"diffusers"`) runs the tiny random-weight model (`--model`). Each mode on the real engine, with
the tiny model, is tested in tests/generation/test_modes.py and test_mask*.py: loading it takes
longer than these runs. The microphone is off (`--mic none`) and the OSC port is any free one,
so the runs cannot disturb each other. Two run at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from installation.generation.engine.tiny_model import ensure_tiny_model
from installation.show import SHOWS_DIR, load_show

ROOT = Path(__file__).resolve().parent.parent
SHOWS = sorted(SHOWS_DIR.glob("*.toml"))
SECONDS = "3"
PARALLEL = 2


@dataclass(frozen=True)
class Run:
    args: list[str]
    returncode: int
    stderr: str
    events: list[dict]

    def of(self, name: str) -> list[dict]:
        return [e for e in self.events if e["event"] == name]


def _run(show: Path, tiny: Path, out: Path) -> Run:
    cfg = load_show(show)
    log = out / f"{show.stem}.jsonl"
    args = [str(show), "--headless", "--seconds", SECONDS, "--mic", "none", "--osc-port", "0", "--log", str(log)]
    if cfg.generator.kind == "diffusers":
        args += ["--model", str(ensure_tiny_model(tiny))]
    if cfg.web.enabled:
        args += ["--web-port", "0"]  # any free port: the page must not collide with anything
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    env.pop("DISPLAY", None)
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return Run(args, proc.returncode, proc.stderr, events)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    tiny = tmp_path_factory.getbasetemp() / "tiny-sd"  # written only if a show asks for diffusers
    out = tmp_path_factory.mktemp("example-shows")
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        futures = {show.stem: pool.submit(_run, show, tiny, out) for show in SHOWS}
        return {name: future.result() for name, future in futures.items()}


def test_there_is_an_example_show_per_mode():
    names = {show.stem for show in SHOWS}
    modes = {"text-to-video", "image-to-video", "stylization", "mask", "customization", "default"}
    assert modes <= names and len(names - {"default"}) >= 6
    readme = (SHOWS_DIR / "README.md").read_text(encoding="utf-8")
    assert all(f"{name}.toml" in readme for name in names), "shows/README.md describes every show"


@pytest.mark.parametrize("show", SHOWS, ids=lambda p: p.stem)
def test_every_example_show_runs_headless_and_presents_frames(runs, show):
    run = runs[show.stem]
    assert run.returncode == 0, f"{' '.join(run.args)}\n{run.stderr[-3000:]}"
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert run.of("presented") or [e for e in run.of("frame") if e.get("first")], \
        f"{show.name}: no frame reached the screen"
    assert run.of("stop") and run.of("stop")[-1]["hung"] == []
    assert show.read_text(encoding="utf-8").startswith("#"), f"{show.name}: starts with a comment saying what it is"


def test_the_stylization_show_paints_its_style_before_anyone_speaks(runs):
    style = load_show("stylization").prompt.initial
    presented = runs["stylization"].of("presented")
    assert presented and all(p["prompt"] == style and p["source"] == "show" for p in presented)


def test_the_mask_show_masks_from_the_start(runs):
    said = runs["mask"].of("mask")
    assert said and said[0]["source"] in ("image", "silhouette")
