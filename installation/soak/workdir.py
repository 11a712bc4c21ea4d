"""What a soak needs on disk before the app starts: the tiny model, a shows folder of its own
(the soak show and a broken one), and a free OSC port.

The soak show is the default show (shows/default.toml: its words, speech and painting settings)
on the demo inputs, with the tiny random-weight model as its primary generator, a camera that
is retried at once when lost, the demo wish looping so that speech keeps coming, OSC on a free
loopback port and two cues, the second of which the harness fires so that a restart can be seen
to bring it back. The folder is the app's shows folder for the soak (JADONG_SHOWS_DIR), so
`/jadong/show` can be handed the broken show without touching the project's shows/.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from installation.core.downloads import jadong_cache_dir
from installation.show import ASSETS_DIR, DEFAULT_SHOW, PROJECT_ROOT, ShowError, load_show

SHOW_NAME = "soak"
BROKEN_SHOW_NAME = "soak-broken"
# A show file with a mistake in it, as staff might save one: the app must refuse it, say why,
# and keep painting the show it has.
BROKEN_SHOW = '[show]\nname = "soak-broken"\n\n[generator]\nsteps = "fast"\n'
CUES = (("dawn", "a quiet garden at dawn"), ("dusk", "a lantern-lit garden at dusk"))
RESTORED_CUE = 2  # fired at the start; a restart must come back to it
CAMERA_RETRY_S = 0.25  # a lost camera is tried again at once: its recovery is the reopen, not a wait
# The tiny model paints at this size. On a CPU a 512 x 512 frame takes it seconds, and a fault's
# recovery (the next good frame) or a SIGTERM (the paint in progress finishes first) would time the
# CPU rather than the recovery; on a GPU the size makes no difference to either.
PAINT_SIZE = 256


class SetupError(RuntimeError):
    """Something the soak needs cannot be made; the message says what and what to do."""


@dataclass(frozen=True)
class SoakFiles:
    work: Path
    shows_dir: Path
    show: Path
    log: Path
    state: Path
    app_output: Path
    model: Path
    osc_port: int


def default_model_dir() -> Path:
    return jadong_cache_dir() / "soak-tiny-sd"


def ensure_model(dest: Path, timeout_s: float = 600.0) -> Path:
    """The tiny random-weight model at `dest`, written by `python run.py tiny-model` if it is
    not there yet (beside it first, then renamed: an interrupted soak leaves no half model)."""
    if (dest / "model_index.json").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "run.py"), "tiny-model", str(tmp)],
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            raise SetupError(f"could not write the tiny model to {dest}: {proc.stderr.strip()[-500:]}")
        try:
            tmp.rename(dest)
        except OSError:  # another soak won the race; its model is as good
            if not (dest / "model_index.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def free_udp_port() -> int:
    """A UDP port nobody holds now on loopback (the app binds it a moment later: a race only
    another program picking the same port in that moment loses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def _table(name: str, values: dict[str, Any]) -> str:
    lines = [f"[{name}]"] + [f"{key} = {_toml_value(v)}" for key, v in values.items()]
    return "\n".join(lines) + "\n"


def soak_show_text(model: Path, osc_port: int, default_show: Path = DEFAULT_SHOW) -> str:
    """The soak show's TOML: the default show's words, speech and painting settings, the demo
    inputs, the tiny model, headless, OSC on `osc_port`."""
    try:
        base = tomllib.loads(default_show.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SetupError(f"{default_show}: cannot be read as the soak's starting point: {exc}") from None
    prompt = {k: v for k, v in base.get("prompt", {}).items() if k in ("template", "initial", "negative")}
    speech = {k: v for k, v in base.get("speech", {}).items()
              if k in ("model", "language", "vad", "end_silence_ms", "beam_size")}
    speech.update(enabled=True, engine="faster-whisper", model="tiny.en", language="en", listen="always")
    generator = {k: v for k, v in base.get("generator", {}).items()
                 if k in ("mode", "steps", "strength", "width", "height", "seed")}
    generator.update(kind="diffusers", model=str(model), width=PAINT_SIZE, height=PAINT_SIZE)
    display = {k: v for k, v in base.get("display", {}).items() if k in ("caption", "crossfade_s", "fps")}
    display.update(mode="headless", hud=False)
    parts = [
        "# Written by `python -m installation.soak` for one soak; not a show to run by hand.\n",
        _table("show", {"name": SHOW_NAME, "title": "Soak",
                        "description": "The default show on the demo inputs with a tiny random-weight model."}),
        _table("camera", {"source": str(ASSETS_DIR / "demo_loop.mp4"), "loop": True, "retry_s": CAMERA_RETRY_S}),
        _table("microphone", {"source": str(ASSETS_DIR / "demo_speech.wav"), "loop": True}),
        _table("speech", speech),
        _table("prompt", prompt),
        _table("generator", generator),
        _table("display", display),
        _table("osc", {"enabled": True, "host": "127.0.0.1", "port": osc_port, "allow": ["127.0.0.1"]}),
    ]
    parts += [_table("[cues]", {"name": name, "prompt": text}) for name, text in CUES]
    return "\n".join(parts)


def prepare(work: Path, log: Path | None = None, model_dir: Path | None = None) -> SoakFiles:
    """The soak's folder, filled; the soak show checked by the app's own loader."""
    for asset in ("demo_loop.mp4", "demo_speech.wav"):
        if not (ASSETS_DIR / asset).is_file():
            raise SetupError(f"{ASSETS_DIR / asset} is missing: the soak plays the demo inputs "
                             "(scripts/make_demo_video.py and scripts/make_demo_speech.sh make them)")
    work.mkdir(parents=True, exist_ok=True)
    shows = work / "shows"
    shows.mkdir(exist_ok=True)
    model = ensure_model(model_dir or default_model_dir())
    port = free_udp_port()
    show = shows / f"{SHOW_NAME}.toml"
    show.write_text(soak_show_text(model, port), encoding="utf-8")
    (shows / f"{BROKEN_SHOW_NAME}.toml").write_text(BROKEN_SHOW, encoding="utf-8")
    try:
        load_show(show)
    except ShowError as exc:
        raise SetupError(f"the soak show does not load (a change to the show schema?): {exc}") from None
    log = log or work / "events.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    return SoakFiles(work=work, shows_dir=shows, show=show, log=log, state=work / "state.json",
                     app_output=work / "app.log", model=model, osc_port=port)


__all__ = ["BROKEN_SHOW", "BROKEN_SHOW_NAME", "CUES", "RESTORED_CUE", "SHOW_NAME", "SetupError", "SoakFiles",
           "default_model_dir", "ensure_model", "free_udp_port", "prepare", "soak_show_text"]
