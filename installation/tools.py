"""The tools beside the show: devices, check, tiny-model, fetch-models, and for content
credentials, credentials (a local CA and signing certificate) and verify (who made an image,
and whether it is intact).

`check` asks, for each thing a show needs, whether this machine has it: each question is a
small function answering `CheckResult`s (need, ok, detail, remedy), so the answers can be
tested without reading prints, and `print_results` is the one place they are printed.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core.downloads import FETCH_COMMAND, copy_cache_hint, hf_cache_dir, hub_endpoint, hub_unreachable_reason
from .show import PROJECT_ROOT, Show, ShowError, SpeechConfig, load_show, parse_ndi_source, resolve_path

# Where `python run.py` writes its event log unless --log says otherwise (cli.default_log_path).
LOG_FOLDER = PROJECT_ROOT / "logs"


def _print_table(title: str, rows: list[dict], empty: str) -> None:
    print(f"{title}:")
    if not rows:
        print(f"  {empty}")
        return
    for row in rows:
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))


def _show_argument(prog: str, description: str, argv: list[str]) -> tuple[Show | None, str]:
    """The show a tool is about (default: shows/default.toml) and how the user named it (for
    the commands it suggests), or (None, "") after saying why not."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("show", nargs="?", default=None, help="a show name in shows/ or a .toml path")
    args = p.parse_args(argv)
    try:
        return load_show(args.show), args.show or ""
    except ShowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, ""


def _command(tool: str, show_arg: str) -> str:
    return f"python run.py {tool}" + (f" {show_arg}" if show_arg else "")


def cmd_devices(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="python run.py devices",
                            description="List cameras, microphones and monitors.").parse_args(argv)
    from .display.presenter import list_monitors
    from .inputs.camera import list_cameras
    from .inputs.microphone import list_microphones, quiet_native_stderr

    with quiet_native_stderr():  # SDL and ALSA print noise on machines without screen or sound server
        cams, mics, mons = list_cameras(), list_microphones(), list_monitors()
    _print_table("cameras", cams, "none found (a show can use a video file or stream URL instead)")
    _print_table("microphones", mics, "none found (a show can use a WAV file instead)")
    _print_table("monitors", mons, "none (no display: shows run headless)")
    return 0


# --- check: one answer per thing the show needs ----------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """One answer of `check`: what the show needs, whether this machine has it, what was found
    (or what is wrong), and what to do. `needed` is False for what the show does not use
    (camera "none", speech off): reported, never a problem."""

    need: str
    ok: bool
    detail: str
    remedy: str = ""
    needed: bool = True

    @property
    def problem(self) -> bool:
        return self.needed and not self.ok


def _not_needed(need: str, why: str) -> CheckResult:
    return CheckResult(need, True, f"not needed: {why}", needed=False)


def _torch_report() -> str:
    try:
        import torch
    except Exception as exc:  # torch is optional for the preview path
        return f"PyTorch not importable ({exc})"
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return f"PyTorch {torch.__version__}, CUDA {torch.version.cuda}: {names}"
    return f"PyTorch {torch.__version__} on CPU (no CUDA GPU): diffusion will be slow, the preview generator is fast"


def check_gpu(show: Show) -> list[CheckResult]:
    missing = [m for m in ("torch", "diffusers", "transformers") if importlib.util.find_spec(m) is None]
    if missing and show.generator.kind != "preview":
        return [CheckResult("diffusion engine", False,
                            f"{', '.join(missing)} not installed: the labelled preview would paint instead",
                            "install the engine: make setup")]
    if missing:
        return [_not_needed("diffusion engine", 'generator.kind = "preview"')]
    return [CheckResult("gpu", True, _torch_report())]


def _local_model_remedy(folder: Path, exists: bool) -> str:
    if not exists:
        return (f"generator.model is a folder path, not a Hugging Face id (owner/name), so `{FETCH_COMMAND}` cannot "
                f"fetch it (it fetches Hugging Face ids only): correct the path (relative paths start at "
                f"{PROJECT_ROOT}), or write a weightless demo model there with `python run.py tiny-model {folder}`")
    return ("copy the whole model folder again (model_index.json and every folder it lists, with their weights), "
            "or set generator.model to a Hugging Face id and fetch it")


def model_remedy(model: str, checkpoint_config: str, show_arg: str) -> str:
    """What to do about a diffusion model that is not on this machine: only a Hugging Face id
    (or a checkpoint's configs named by one) can be fetched."""
    from .generation.engine.checkpoint_file import check_file
    from .generation.engine.models import locate

    fetch = (f"`{_command('fetch-models', show_arg)}` while online (without internet here: fetch on another "
             f"machine and copy the Hugging Face cache to {hf_cache_dir()})")
    loc = locate(model)
    if not model.strip():
        return "set generator.model to a Hugging Face id, a diffusers folder or a .safetensors/.ckpt file"
    if loc.file is not None:
        if check_file(loc.file):
            return (f"generator.model names a checkpoint file: put it at {loc.file} or correct the path "
                    f"(relative paths start at {PROJECT_ROOT}); it is the show's own and cannot be fetched")
        # Without checkpoint_config the configs are diffusers' guess: a hub id, fetchable.
        config_folder = locate(checkpoint_config).folder if checkpoint_config.strip() else None
        if config_folder is not None:
            return (f"generator.checkpoint_config names the folder {config_folder}, which is missing or incomplete: "
                    "correct it (any diffusers folder of the same architecture; weights are not needed)")
        return f"fetch its configs (no weights) with {fetch}"
    if loc.folder is not None:
        return _local_model_remedy(loc.folder, loc.folder.exists())
    return f"fetch it with {fetch}"


_FETCH_ADVICE = re.compile(r"; fetch (it|them)\b.*$")


def check_diffusion_model(show: Show, show_arg: str = "") -> list[CheckResult]:
    from .generation.engine.models import MODEL_LICENCES, model_available_locally

    gen = show.generator
    if gen.kind == "preview":
        return [_not_needed("diffusion model", 'generator.kind = "preview" paints without one')]
    present, reason = model_available_locally(gen.model, checkpoint_config=gen.checkpoint_config)
    reason = _FETCH_ADVICE.sub("", reason)  # the remedy says how to fetch, naming the show
    results = [CheckResult("diffusion model", present, reason if present else
                           f"{reason}; the show would paint the labelled preview instead",
                           "" if present else model_remedy(gen.model, gen.checkpoint_config, show_arg))]
    licence = MODEL_LICENCES.get(gen.model)
    if licence:
        results.append(CheckResult("model licence", True, licence))
    return results


def _extra_found(ref: str) -> tuple[bool, str]:
    """A LoRA: a .safetensors file, a folder, or a hub id in the cache."""
    from .generation.engine.models import hub_repo_cached, looks_like_hf_id

    path = resolve_path(ref)
    if path.exists():
        return True, f"{ref} found ({path})"
    if looks_like_hf_id(ref):
        if hub_repo_cached(ref):
            return True, f"{ref} found in the Hugging Face cache"
        return False, f"{ref} is not in the Hugging Face cache ({hf_cache_dir()})"
    return False, f"{ref}: no such file or folder ({path})"


def check_model_extras(show: Show, show_arg: str = "") -> list[CheckResult]:
    """What the streaming engine loads beside the model: the fast autoencoder, the LoRAs."""
    from .generation.engine.models import TAESD, TAESDXL, autoencoder_folder, looks_like_hf_id, model_is_sdxl

    gen = show.generator
    if gen.kind == "preview" or gen.engine != "stream":
        return []
    results = []
    fetch = f"`{_command('fetch-models', show_arg)}` gets it"
    if gen.autoencoder == "full":
        results.append(_not_needed("fast autoencoder", 'generator.autoencoder = "full" (the model\'s own VAE)'))
    else:
        ref = (TAESDXL if model_is_sdxl(gen.model, gen.checkpoint_config) else TAESD) \
            if gen.autoencoder == "auto" else gen.autoencoder
        folder, missing = autoencoder_folder(ref)
        if folder is not None:
            results.append(CheckResult("fast autoencoder", True, f"{ref} found ({folder})"))
        elif gen.autoencoder == "auto":  # optional: the model's own VAE stands in
            results.append(CheckResult("fast autoencoder", True,
                                       f"{ref} is not downloaded; the model's own VAE is used (slower)", fetch))
        else:
            results.append(CheckResult("fast autoencoder", False, f"generator.autoencoder {missing}",
                                       fetch if looks_like_hf_id(ref) else "correct generator.autoencoder"))
    for ref, field in ((gen.lcm_lora, "generator.lcm_lora"), (gen.lora, "generator.lora")):
        if ref:
            found, detail = _extra_found(ref)
            remedy = "" if found else (fetch if looks_like_hf_id(ref) else
                                       f"correct {field} (relative paths start at {PROJECT_ROOT})")
            results.append(CheckResult("LoRA", found, f"{field}: {detail}", remedy))
    if gen.mode == "feedback" and gen.still_image:
        path = resolve_path(gen.still_image)
        results.append(CheckResult("still image", path.is_file(), f"generator.still_image {path}"
                                   + (" found" if path.is_file() else " does not exist"),
                                   "" if path.is_file() else "correct generator.still_image"))
    return results


def _speech_in_use(show: Show) -> str:
    """'' when the show listens, else why it does not."""
    if not show.speech.enabled:
        return "speech.enabled = false"
    source = show.microphone.source
    if isinstance(source, str) and source.strip().lower() in ("none", ""):
        return 'microphone.source = "none" (nothing is heard)'
    return ""


def whisper_on_disk(cfg: SpeechConfig) -> tuple[bool, str]:
    """(True, where) when the show's Whisper model is on this machine, else (False, why). Never downloads."""
    from .speech.transcribe import OpenAIWhisperTranscriber, TranscriberUnavailable, resolve_whisper_model

    try:
        if cfg.engine == "openai-whisper":
            name = OpenAIWhisperTranscriber(cfg).checkpoint()
            return True, f"openai-whisper {name} on disk"
        resolved = resolve_whisper_model(cfg.model)
    except TranscriberUnavailable as exc:
        return False, str(exc)
    except ImportError as exc:
        return False, f"the {cfg.engine} engine is not installed ({exc})"
    if os.path.isdir(resolved):
        return True, f"{cfg.model} on disk ({resolved})"
    try:
        from faster_whisper.utils import download_model
    except ImportError as exc:
        return False, f"faster-whisper is not installed ({exc})"
    try:
        folder = download_model(resolved, local_files_only=True, cache_dir=str(hf_cache_dir()))
        return True, f"{cfg.model} in the Hugging Face cache ({folder})"
    except ValueError as exc:  # not a size faster-whisper knows
        return False, f"speech.model {cfg.model!r}: {exc}"
    except Exception:  # not in the cache: huggingface_hub says so in several ways
        return False, f"{cfg.model} is not on this machine (no such folder, not in the Hugging Face cache " \
                      f"{hf_cache_dir()})"


def check_speech(show: Show, show_arg: str = "") -> list[CheckResult]:
    off = _speech_in_use(show)
    if off:
        return [_not_needed("speech model", off)]
    present, detail = whisper_on_disk(show.speech)
    if not present:
        detail += "; the show would run without speech"
    results = [CheckResult("speech model", present, detail,
                           "" if present else f"`{_command('fetch-models', show_arg)}` gets it while online")]
    from .speech.moderation import ModerationError, Moderator

    try:
        Moderator(show.moderation)
        results.append(CheckResult("word lists", True, f"moderation lists {', '.join(show.moderation.lists)} read"
                                   if show.moderation.enabled else "moderation is off (moderation.enabled = false)"))
    except ModerationError as exc:
        results.append(CheckResult("word lists", False, f"{exc}; nothing heard would be painted",
                                   "correct [moderation] lists"))
    return results


# --- vision captioner (#10): the optional image-to-text model for {scene} ---------------------


def check_vision(show: Show) -> list[CheckResult]:
    """The vision stage's detectors: which the show gets on this machine (without importing
    them: mediapipe takes a second), and that it has a camera to read."""
    vision = show.vision
    if not vision.enabled:
        return [_not_needed("vision", "vision.enabled = false")]
    if show.camera.source == "none":
        return [CheckResult("vision", False,
                            '[vision] is enabled but camera.source = "none": no scene words, no presence',
                            "set camera.source to a camera or video file, or [vision] enabled = false")]
    from .vision.faces import INSTALL_HINT

    mediapipe = importlib.util.find_spec("mediapipe") is not None
    faces = {"off": "none", "haar": "OpenCV's Haar cascade"}.get(
        vision.faces, "mediapipe (full range)" if mediapipe else "OpenCV's Haar cascade (mediapipe not installed)")
    mask = {"off": "none", "background": "background subtraction"}.get(
        vision.silhouette, "mediapipe segmentation when someone is near" if mediapipe
        else "background subtraction (mediapipe not installed)")
    detail = (f"{vision.rate_hz:g} analyses a second; figures: HOG on moving shapes; faces: {faces}; "
              f"silhouette: {mask}")
    wanted = "mediapipe" in (vision.faces, vision.silhouette) or (vision.silhouette == "segmentation")
    if wanted and not mediapipe:
        return [CheckResult("vision", False, f"{detail}; the show asks for mediapipe", INSTALL_HINT)]
    return [CheckResult("vision", True, detail)]


def check_captioner(show: Show, show_arg: str = "") -> list[CheckResult]:
    """The show's [vision] captioner: on this machine (files only, no torch), or what to do."""
    from .vision.captioner import CAPTIONER_LICENCES, DEFAULT_CAPTIONER, is_hub_ref, locate_captioner

    vision = show.vision
    if not vision.enabled:
        return [_not_needed("captioner", "vision.enabled = false")]
    ref = vision.captioner.strip()
    if not ref:
        return [_not_needed("captioner", 'vision.captioner = "" ({scene} stays empty: the scene words alone)')]
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    files, reason = locate_captioner(ref)
    if missing:
        result = CheckResult("captioner", False, f"vision.captioner {ref} needs {' and '.join(missing)}, which "
                             "is not installed; the show would run with the scene words alone", "make setup")
    elif files is not None:
        result = CheckResult("captioner", True, f"{ref} found ({files.family}, {files.where}); a caption every "
                             f"{vision.caption_every_s:g} s for {{scene}}")
    else:
        remedy = (f"`{_command('fetch-models', show_arg)}` gets it while online" if is_hub_ref(ref) else
                  f"correct vision.captioner: a BLIP or GIT model folder (relative paths start at {PROJECT_ROOT}) "
                  f"or a Hugging Face id such as {DEFAULT_CAPTIONER}; \"\" for none")
        detail = _FETCH_ADVICE_LINE.sub("", reason)  # the remedy says how to fetch, naming the show
        result = CheckResult("captioner", False, f"{detail}; the show would run with the scene words alone "
                             "({scene} empty)", remedy)
    licence = CAPTIONER_LICENCES.get(ref)
    return [result, CheckResult("captioner licence", True, licence)] if licence else [result]


_FETCH_ADVICE_LINE = re.compile(r"; run `[^`]*fetch-models`.*$")


# --- image safety (#11): the optional checker on generated frames ------------------------------


def check_safety(show: Show, show_arg: str = "") -> list[CheckResult]:
    """The show's [safety] checker: on this machine (files only, no torch), or what to do."""
    from .generation.engine.safety_checker import is_hub_ref, locate_safety_checker

    cfg = show.safety
    if not cfg.enabled:
        return [_not_needed("safety checker", "safety.enabled = false")]
    if show.generator.kind == "preview":
        return [_not_needed("safety checker", 'generator.kind = "preview" (the preview is not checked)')]
    files, reason = locate_safety_checker(cfg.model)
    if files is not None:
        return [CheckResult("safety checker", True, f"{cfg.model} found ({files.where}); frames held once "
                            f"{cfg.streak} in a row are flagged, adjustment {cfg.adjustment:+g}")]
    without = ("the model's frames would be shown UNCHECKED" if cfg.if_missing == "unchecked"
               else "the preview would paint instead of the model")
    remedy = (f"`{_command('fetch-models', show_arg)}` gets it while online" if is_hub_ref(cfg.model) else
              f"correct safety.model: a folder with config.json, weights and preprocessor_config.json (relative "
              f"paths start at {PROJECT_ROOT}) or a Hugging Face id such as CompVis/stable-diffusion-safety-checker")
    return [CheckResult("safety checker", False, f"{_FETCH_ADVICE_LINE.sub('', reason)}; {without}", remedy)]


def _cameras_here() -> str:
    from .inputs.camera import list_cameras

    cams = list_cameras()
    return "cameras found: " + (", ".join(str(c["index"]) for c in cams) if cams else "none")


def check_camera(show: Show) -> list[CheckResult]:
    from .core.interfaces import DeviceLost
    from .inputs.camera import OpenCVSource, open_frame_source

    source = open_frame_source(show.camera)
    if source is None:
        return [_not_needed("camera", 'camera.source = "none"')]
    if not isinstance(source, OpenCVSource):
        return check_ndi_camera(source)
    spec = source.spec
    if spec.kind == "stream":
        return [CheckResult("camera", True, f"{spec.description}: not probed (opening a stream can take seconds; "
                            "the show retries it while it runs)",
                            f"to try it: python run.py --camera '{show.camera.source}' --seconds 10")]
    fix = {"device": "set camera.source to a camera `python run.py devices` lists, a video file, or \"none\"",
           "file": f"correct camera.source (relative paths start at {PROJECT_ROOT}); an .mp4 (H.264) is safest"}
    try:
        source.open()
        if spec.kind == "file":
            source.read()  # opens is not enough: a file must also decode
    except DeviceLost as exc:
        extra = f" ({_cameras_here()})" if spec.kind == "device" else ""
        return [CheckResult("camera", False, f"{exc}{extra}",
                            fix.get(spec.kind, "correct camera.source: a device index, a video file, a stream URL "
                                               "or \"none\""))]
    finally:
        source.close()
    size = f" ({source.size[0]}x{source.size[1]})" if source.size else ""
    return [CheckResult("camera", True, f"{spec.description} opens{size}")]


def ndi_uses(show: Show) -> list[str]:
    """What in `show` asks for NDI, for `check` (an NDI camera; outputs add theirs here)."""
    camera = isinstance(show.camera.source, str) and parse_ndi_source(show.camera.source)
    return ["camera.source"] * bool(camera) + [f"outputs[{i}]" for i, o in enumerate(show.outputs) if o.kind == "ndi"]


def check_ndi(show: Show) -> list[CheckResult]:
    """Whether the NDI runtime loads, for a show that asks for NDI (`--ndi` runs check it at start)."""
    from .core.ndi_runtime import NdiUnavailable, load_ndi

    uses = ndi_uses(show)
    if not uses:
        return [_not_needed("NDI runtime", "the show uses no NDI (a run with --ndi NAME would load it)")]
    try:
        runtime = load_ndi()
    except NdiUnavailable as exc:
        return [CheckResult("NDI runtime", False, f"{exc.reason}; needed by {', '.join(uses)}; the show would run "
                            "without NDI", exc.remedy)]
    return [CheckResult("NDI runtime", True, f"{runtime.summary} loads (for {', '.join(uses)})")]


def check_ndi_camera(source: Any) -> list[CheckResult]:
    """An NDI camera: looked for (by name or address) and one frame received."""
    from .core.interfaces import DeviceLost

    try:
        source.open()
        source.read()
    except DeviceLost as exc:
        return [CheckResult("camera", False, f"{exc}; the show would wait for it, retrying every camera.retry_s",
                            "start the sender; check the name (NDI names read \"MACHINE (NAME)\"); where mDNS does "
                            "not reach, put the sender's machine in camera.ndi_ips or use ndi://HOST/NAME")]
    finally:
        source.close()
    w, h = source.size or (0, 0)
    return [CheckResult("camera", True, f"{source.description} receives ({w}x{h}, from {source.connected_to})")]


def check_microphone(show: Show) -> list[CheckResult]:
    from .inputs.microphone import open_audio_source, quiet_native_stderr
    from .inputs.wav import AudioUnavailable, WavFileSource, read_wav

    off = _speech_in_use(show)
    if off:
        return [_not_needed("microphone", off)]
    fix = ('set microphone.source to an input `python run.py devices` lists, "default", a WAV file '
           f'(relative paths start at {PROJECT_ROOT}) or "none"')
    try:
        source = open_audio_source(show.microphone, paced=False)
        if isinstance(source, WavFileSource):
            wav = read_wav(source.path)
            return [CheckResult("microphone", True, f"WAV file {source.path} reads ({wav.duration:.1f} s, "
                                f"{wav.sample_rate} Hz, {wav.channels} ch)")]
        assert source is not None  # _speech_in_use said the show listens
        with quiet_native_stderr():  # ALSA and JACK print noise when there is no sound server
            try:
                source.open()
            finally:
                source.close()
    except AudioUnavailable as exc:
        return [CheckResult("microphone", False, f"{exc}; the show would run without speech", fix)]
    return [CheckResult("microphone", True, f"{source.description} opens")]


def check_display(show: Show) -> list[CheckResult]:
    from .display.presenter import list_monitors
    from .inputs.microphone import quiet_native_stderr

    if show.outputs:
        return check_outputs(show)
    mode = show.display.mode
    if mode == "headless":
        return [_not_needed("display", 'display.mode = "headless"')]
    with quiet_native_stderr():  # SDL prints noise on machines without a desktop session
        monitors = list_monitors()
    env = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if not monitors:
        linux = sys.platform.startswith("linux")
        why = "DISPLAY is not set" if not env and linux else f"no monitor seen, DISPLAY={env}"
        return [CheckResult("display", False, f"display.mode = \"{mode}\" needs a display and there is none ({why}); "
                            "the show would run headless and show nothing",
                            "run it where a screen is attached (DISPLAY=:0 in the service's environment), or "
                            "set display.mode = \"headless\" (or pass --headless, with --record FILE to keep a video)")]
    sizes = ", ".join(f"{m['index']}: {m['width']}x{m['height']}" for m in monitors)
    if mode == "fullscreen" and show.display.monitor >= len(monitors):
        return [CheckResult("display", False, f"display.monitor = {show.display.monitor}, but the monitors are {sizes}",
                            "set display.monitor to one of them (`python run.py devices` lists them)")]
    where = f" on monitor {show.display.monitor}" if mode == "fullscreen" else ""
    return [CheckResult("display", True, f"{mode}{where}; monitors {sizes}")]


def check_outputs(show: Show) -> list[CheckResult]:
    """A show with [[outputs]]: each screen's monitor, each recording's file (NDI outputs are
    the "NDI runtime" answer's)."""
    from .display.outputs import plan_outputs
    from .display.presenter import list_monitors
    from .display.recorder import record_path_problem
    from .inputs.microphone import quiet_native_stderr

    plans = plan_outputs(show)
    results = []
    windows = [p for p in plans if p.windowed]
    monitors: list[dict] = []
    if windows:
        with quiet_native_stderr():  # SDL prints noise on machines without a desktop session
            monitors = list_monitors()
    sizes = ", ".join(f"{m['index']}: {m['width']}x{m['height']}" for m in monitors) or "none"
    for plan in plans:
        need = f"output {plan.number}"
        if plan.kind == "screen" and not plan.windowed:
            results.append(_not_needed(need, f"headless (stream {plan.stream})"))
        elif plan.kind == "screen" and not monitors:
            env = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
            why = f"no monitor seen, DISPLAY={env}" if env else "DISPLAY is not set"
            results.append(CheckResult(need, False, f"{plan.label} needs a display and there is none ({why}); it "
                                       "would run headless and show nothing",
                                       "run it where the screens are attached (DISPLAY=:0 in the service's "
                                       "environment), or pass --headless to rehearse without them"))
        elif plan.kind == "screen" and plan.display.monitor >= len(monitors):
            results.append(CheckResult(need, False, f"{plan.label}: there is no monitor {plan.display.monitor} "
                                       f"(monitors {sizes}); it would run "
                                       f"{'headless' if plan.display.mode == 'fullscreen' else 'on monitor 0'}",
                                       f"set outputs[{plan.number - 1}].monitor to one `python run.py devices` "
                                       "lists, or attach the monitor"))
        elif plan.kind == "record":
            problem = record_path_problem(plan.record_path or "", fps=plan.record_fps,
                                          size=(plan.display.width, plan.display.height))
            results.append(CheckResult(need, problem is None, problem or f"{plan.label}: can be written",
                                       f"set outputs[{plan.number - 1}].path to a file in a folder that exists"))
        elif plan.kind == "screen":
            results.append(CheckResult(need, True, f"{plan.label}; monitors {sizes}"))
        else:
            results.append(CheckResult(need, True, f"{plan.label} (see NDI runtime)"))
    return results


def check_osc(show: Show) -> list[CheckResult]:
    cfg = show.osc
    if not cfg.enabled:
        return [_not_needed("OSC port", "osc.enabled = false")]
    where = f"UDP {cfg.host}:{cfg.port}"
    try:
        family, _, _, _, address = socket.getaddrinfo(cfg.host, cfg.port, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind(address)
    except socket.gaierror as exc:
        return [CheckResult("OSC port", False, f"osc.host {cfg.host!r} cannot be resolved ({exc.strerror or exc})",
                            "use 127.0.0.1 for this machine only, or 0.0.0.0 for the network")]
    except OSError as exc:
        reasons = {
            errno.EADDRINUSE: (f"{where} is already in use (another Jadong or OSC program?)",
                               "stop it, or set osc.port in the show (0 picks a free port)"),
            errno.EADDRNOTAVAIL: (f"{cfg.host} is not an address of this machine (osc.host)",
                                  "use 127.0.0.1 for this machine only, or 0.0.0.0 for the network"),
            errno.EACCES: (f"no permission to listen on {where} (ports below 1024 need root)",
                           "set osc.port to 1024 or more"),
        }
        detail, remedy = reasons.get(exc.errno or 0, (f"cannot listen on {where} ({exc.strerror or exc})",
                                                      "set osc.host and osc.port"))
        return [CheckResult("OSC port", False, detail + "; the show would run without OSC", remedy)]
    free = "any free port (osc.port = 0)" if cfg.port == 0 else f"{where} is free"
    return [CheckResult("OSC port", True, free)]


def check_log_folder(folder: Path = LOG_FOLDER) -> list[CheckResult]:
    """The event log's folder can be written (or created). Looks only: creates nothing."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == folder and not folder.is_dir():
        return [CheckResult("log folder", False, f"{folder} is not a folder", "remove it, or pass --log PATH")]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [CheckResult("log folder", False, f"{existing} cannot be written by this user; the event log "
                            "would be lost (its lines counted, not kept)",
                            f"make {existing} writable, or pass --log PATH to put the event log elsewhere")]
    created = "" if existing == folder else f" (created at the first run, in {existing})"
    return [CheckResult("log folder", True, f"{folder} is writable{created}")]


def check_credentials(show: Show) -> list[CheckResult]:
    """The certificate and key that sign captures ([provenance]): readable and usable, or
    Jadong's own (made at the first capture when missing). Loads; creates nothing."""
    from .control.credentials import DEFAULT_DIR, CredentialsError, load_credentials

    cfg = show.provenance
    if not cfg.certificate.strip():
        own = DEFAULT_DIR / "signing.pem"
        where = f"Jadong's own in {own.parent}" + ("" if own.is_file() else ", made at the first capture")
        return [CheckResult("signing credentials", True, f"no [provenance] certificate: {where}",
                            "a gallery with its own CA: `python run.py credentials DIR`, then name the files in "
                            "[provenance] certificate and key", needed=False)]
    try:
        creds = load_credentials(resolve_path(cfg.certificate), resolve_path(cfg.key))
    except CredentialsError as exc:
        return [CheckResult("signing credentials", False, f"{exc}; captures would be saved unsigned",
                            "fix the files, or make a pair with `python run.py credentials DIR`")]
    return [CheckResult("signing credentials", True, f"{creds.subject} ({creds.alg}) from {creds.where}")]


def check_helpers() -> list[CheckResult]:
    return [CheckResult(tool, True, "found" if shutil.which(tool) else "not found (only needed to remake the demo "
                        "assets)", needed=False) for tool in ("ffmpeg", "espeak-ng")]


def run_checks(show: Show, show_arg: str = "") -> list[CheckResult]:
    """Every answer of `check` for `show`, in the order printed. A check that fails in a way
    nobody foresaw becomes a problem saying so, never a traceback."""
    checks: list[tuple[str, Callable[[], list[CheckResult]]]] = [
        ("gpu", lambda: check_gpu(show)),
        ("diffusion model", lambda: check_diffusion_model(show, show_arg)),
        ("model extras", lambda: check_model_extras(show, show_arg)),
        ("speech model", lambda: check_speech(show, show_arg)),
        ("vision", lambda: check_vision(show)),
        ("captioner", lambda: check_captioner(show, show_arg)),
        ("safety checker", lambda: check_safety(show, show_arg)),
        ("NDI runtime", lambda: check_ndi(show)),
        ("camera", lambda: check_camera(show)),
        ("microphone", lambda: check_microphone(show)),
        ("display", lambda: check_display(show)),
        ("OSC port", lambda: check_osc(show)),
        ("log folder", lambda: check_log_folder()),
        ("signing credentials", lambda: check_credentials(show)),
        ("helpers", check_helpers),
    ]
    results: list[CheckResult] = []
    for need, check in checks:
        try:
            results.extend(check())
        except Exception as exc:
            results.append(CheckResult(need, False, f"could not be checked: {type(exc).__name__}: {exc}",
                                       "run the show with -v to see more, and report it if it is Jadong's fault"))
    return results


def print_results(show: Show, results: list[CheckResult], show_arg: str = "") -> int:
    """Prints the answers and returns the exit status: 1 when the show cannot run as written."""
    print(f"show: {show.show.name} ({show.path})")
    for r in results:
        mark = "OK" if r.ok and r.needed else ("--" if not r.needed else "FAIL")
        print(f"  {mark:<4}  {r.need}: {r.detail}")
        if r.remedy:
            print(f"        {'fix' if r.problem else 'tip'}: {r.remedy}")
    problems = [r.need for r in results if r.problem]
    if problems:
        print(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} ({', '.join(problems)}): the show cannot run "
              f"as written; fix them and run `{_command('check', show_arg)}` again")
        return 1
    print("all OK: the show can run as written")
    return 0


def cmd_check(argv: list[str]) -> int:
    show, show_arg = _show_argument("python run.py check", "Say, for each thing a show needs (models, camera, "
                                    "microphone, display, OSC port, log folder), whether this machine has it; "
                                    "exit 1 when the show cannot run as written.", argv)
    if show is None:
        return 2
    return print_results(show, run_checks(show, show_arg), show_arg)


# --- tiny-model --------------------------------------------------------------------------------


def _folder_problem(dest: Path) -> str:
    """'' when `dest` is (or can be made) a folder this user can write into, else why not."""
    if dest.exists() and not dest.is_dir():
        return f"{dest} exists and is not a folder"
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno == errno.ENOENT and dest.parent.is_dir():
            return f"cannot create the folder {dest}: {dest.parent} does not allow new folders"
        return f"cannot create the folder {dest}: {exc.strerror or exc}"
    try:  # writing is the only sure test: root passes every permission check, /proc refuses anyway
        tempfile.TemporaryFile(dir=dest).close()
    except OSError as exc:
        return f"cannot write into {dest}: {exc.strerror or exc}"
    return ""


def _file_problem(file: Path) -> str:
    if file.is_dir():
        return f"--single-file {file} is a folder; give a file name"
    problem = _folder_problem(file.parent)
    return f"--single-file {file}: {problem}" if problem else ""


def cmd_tiny_model(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python run.py tiny-model",
                                description="Write a tiny random-weight diffusers model for tests "
                                            "and weightless demos.")
    p.add_argument("dest", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--single-file", type=Path, default=None, metavar="FILE",
                   help="also write it as one original-layout checkpoint (.safetensors or .ckpt), to try "
                        "single-file loading: run it with generator.checkpoint_config = DEST")
    args = p.parse_args(argv)
    if args.single_file is not None and args.single_file.suffix.lower() not in (".safetensors", ".ckpt"):
        p.error(f"--single-file: expected a .safetensors or .ckpt file name, got {args.single_file}")
    # Asked before a second of torch imports, and said in one line: a path is the user's to fix.
    problem = _folder_problem(args.dest) or (_file_problem(args.single_file) if args.single_file else "")
    if problem:
        print(f"error: tiny-model: {problem}; choose a folder you can write, e.g. /tmp/tiny", file=sys.stderr)
        return 2
    from .generation.engine.tiny_model import write_tiny_model

    try:
        path = write_tiny_model(args.dest, seed=args.seed)
        print(f"wrote a tiny random-weight model to {path}; run it with: python run.py --model {path}")
        if args.single_file is not None:
            from .generation.engine.ldm_export import write_single_file

            file = write_single_file(path, args.single_file)
            print(f"wrote it as one checkpoint to {file}; a show runs it with generator.model = \"{file}\" "
                  f"and generator.checkpoint_config = \"{path}\"")
    except Exception as exc:  # a full disk, a folder removed while writing (safetensors raises its own type)
        where = getattr(exc, "filename", None) or args.dest
        reason = getattr(exc, "strerror", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"error: tiny-model: writing {where} failed: {reason}", file=sys.stderr)
        return 1
    return 0


# --- fetch-models ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """One thing `fetch-models` gets for a show: already here, not fetchable (`problem`: a
    local path that is not there), or fetched by `fetch` (which returns where it went)."""

    what: str  # "diffusion model", "fast autoencoder", ...
    ref: str
    present: bool
    fetch: Callable[[], str]
    problem: str = ""


def _wanted_model(show: Show, show_arg: str) -> Wanted:
    from .generation.engine.models import (
        fetch_checkpoint_config,
        fetch_model,
        locate,
        model_available_locally,
    )

    model, config = show.generator.model, show.generator.checkpoint_config
    present, reason = model_available_locally(model, checkpoint_config=config)
    loc = locate(model)
    if loc.file is not None:  # the file is the show's own: only its configs are fetched
        config_ref = locate(config) if config.strip() else None
        local = not loc.file.is_file() or (config_ref is not None and config_ref.hf_id is None)
        return Wanted("diffusion model configs", model, present,
                      lambda: f"configs fetched to {fetch_checkpoint_config(model, config)}",
                      "" if present or not local else f"{reason}; {model_remedy(model, config, show_arg)}")
    local = loc.hf_id is None  # a folder (or nothing): fetch-models cannot get it
    return Wanted("diffusion model", model, present, lambda: f"fetched to {fetch_model(model)}",
                  "" if present or not local else f"{reason}; {model_remedy(model, config, show_arg)}")


def _wanted_extras(show: Show) -> list[Wanted]:
    """The streaming engine's extras: the fast autoencoder and the show's LoRAs (hub ids only)."""
    from .generation.engine.models import (
        TAESD,
        TAESDXL,
        autoencoder_folder,
        fetch_model,
        hub_repo_cached,
        looks_like_hf_id,
        model_is_sdxl,
    )

    gen = show.generator
    refs: list[tuple[str, str]] = []
    if gen.autoencoder == "auto":
        refs.append(("fast autoencoder", TAESDXL if model_is_sdxl(gen.model, gen.checkpoint_config) else TAESD))
    elif gen.autoencoder != "full":
        refs.append(("fast autoencoder", gen.autoencoder))
    refs += [("LoRA", ref) for ref in (gen.lcm_lora, gen.lora) if ref]
    wanted = []
    for what, ref in refs:
        if not looks_like_hf_id(ref) or resolve_path(ref).exists():
            continue  # a local file or folder: the show's own (check says whether it is there)
        present = autoencoder_folder(ref)[0] is not None if what == "fast autoencoder" else hub_repo_cached(ref)
        wanted.append(Wanted(what, ref, present, lambda ref=ref: f"fetched to {fetch_model(ref)}"))
    return wanted


def _wanted_speech(show: Show) -> list[Wanted]:
    if not show.speech.enabled:
        return []
    from .speech.transcribe import fetch_whisper_model

    present, _ = whisper_on_disk(show.speech)
    return [Wanted(f"speech model ({show.speech.engine})", show.speech.model, present,
                   lambda: f"at {fetch_whisper_model(show.speech)}")]


def _wanted_captioner(show: Show) -> list[Wanted]:
    """The show's [vision] captioner when it names a Hugging Face id (#10); a local folder is the
    show's own: named as a problem when it is not there, never fetched."""
    from .vision.captioner import fetch_captioner, is_hub_ref, locate_captioner

    ref = show.vision.captioner.strip()
    if not show.vision.enabled or not ref:
        return []
    files, reason = locate_captioner(ref)
    problem = "" if files is not None or is_hub_ref(ref) else (
        f"{reason}; correct vision.captioner (a folder is the show's own; fetch-models fetches Hugging Face ids)")
    return [Wanted("captioner", ref, files is not None, lambda: f"fetched to {fetch_captioner(ref)}", problem)]


def _wanted_safety(show: Show) -> list[Wanted]:
    """The show's [safety] checker when it names a Hugging Face id; a folder is the show's own."""
    from .generation.engine.safety_checker import fetch_safety_checker, is_hub_ref, locate_safety_checker

    ref = show.safety.model.strip()
    if not show.safety.enabled or show.generator.kind == "preview" or not ref:
        return []
    files, reason = locate_safety_checker(ref)
    problem = "" if files is not None or is_hub_ref(ref) else (
        f"{reason}; correct safety.model (a folder is the show's own; fetch-models fetches Hugging Face ids)")
    return [Wanted("safety checker", ref, files is not None, lambda: f"fetched to {fetch_safety_checker(ref)}",
                   problem)]


def _fetch(item: Wanted) -> bool:
    from .generation.engine.models import MODEL_LICENCES
    from .vision.captioner import CAPTIONER_LICENCES

    licence = MODEL_LICENCES.get(item.ref) or CAPTIONER_LICENCES.get(item.ref)
    if licence:
        print(f"{item.ref}: licence: {licence}")
    try:
        print(f"{item.ref}: {item.fetch()}")
        return True
    except Exception as exc:  # one line, not a traceback: the network or the hub said no
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"{item.ref}: could not be fetched: {first}", file=sys.stderr)
        return False


def cmd_fetch_models(argv: list[str]) -> int:
    show, show_arg = _show_argument("python run.py fetch-models",
                                    "Download the models a show needs into the Hugging Face cache (needs internet).",
                                    argv)
    if show is None:
        return 2
    from .generation.engine.models import single_hub_log_lines

    items = [_wanted_model(show, show_arg), *_wanted_extras(show), *_wanted_speech(show), *_wanted_captioner(show),
             *_wanted_safety(show)]
    failures = 0
    for item in items:
        if item.present:
            print(f"{item.ref}: already present")
        elif item.problem:
            failures += 1
            print(f"{item.ref}: cannot be fetched: {item.problem}", file=sys.stderr)
    to_fetch = [item for item in items if not item.present and not item.problem]
    if not to_fetch:
        return 1 if failures else 0
    # Asked once, in a few seconds: huggingface_hub would retry each file for most of a minute.
    unreachable = hub_unreachable_reason()
    if unreachable:
        names = ", ".join(f"{item.ref} ({item.what})" for item in to_fetch)
        print(f"cannot reach the Hugging Face hub at {hub_endpoint()}: {unreachable}.\n"
              f"not fetched: {names}.\n{copy_cache_hint(_command('fetch-models', show_arg))}.", file=sys.stderr)
        return 1
    single_hub_log_lines()
    failures += sum(not _fetch(item) for item in to_fetch)
    return 1 if failures else 0


# --- content credentials ----------------------------------------------------------------------


def cmd_credentials(argv: list[str]) -> int:
    from .control.credentials import CredentialsError, make_credentials

    p = argparse.ArgumentParser(prog="python run.py credentials",
                                description="Make a local certificate authority and a signing certificate it "
                                            "issued, for the content credentials on captures.")
    p.add_argument("dest", type=Path, help="an empty folder (made if missing); keep it: images signed with it "
                                           "verify against its CA")
    p.add_argument("--name", default="Jadong", help="the organisation the certificates name (default: Jadong)")
    args = p.parse_args(argv)
    try:
        files = make_credentials(args.dest, args.name.strip() or "Jadong")
    except CredentialsError as exc:
        print(f"error: credentials: {exc}", file=sys.stderr)
        return 2
    print(f"wrote a local CA ({files.ca}, its key {files.ca_key}) and a signing certificate it issued "
          f"({files.certificate}, its key {files.key}); keys are readable by this user only.\n"
          f"Sign a show's captures with them:\n\n[provenance]\ncertificate = \"{files.certificate}\"\n"
          f"key = \"{files.key}\"\n\nand check a capture with: python run.py verify FILE --trust {files.ca}")
    return 0


def cmd_verify(argv: list[str]) -> int:
    from .control.credentials import DEFAULT_DIR, CredentialsError, trust_anchors
    from .control.provenance import DIGITAL_SOURCE_TYPE, UNREADABLE, verify

    p = argparse.ArgumentParser(prog="python run.py verify",
                                description="Say who made an image and how, from its content credentials (C2PA), "
                                            "and whether it is intact or altered; exit 0 only for an intact "
                                            "Jadong capture signed by a trusted certificate.")
    p.add_argument("file", type=Path, help="a capture (.png) or its clip (.mp4)")
    p.add_argument("--trust", type=Path, action="append", default=[], metavar="CA.pem",
                   help=f"trust this CA certificate (repeatable; default: Jadong's own, {DEFAULT_DIR / 'ca.pem'})")
    args = p.parse_args(argv)
    anchors_from = args.trust or [f for f in (DEFAULT_DIR / "ca.pem",) if f.is_file()]
    try:
        anchors = trust_anchors(anchors_from)
    except CredentialsError as exc:
        print(f"error: verify: {exc}", file=sys.stderr)
        return 2
    verdict = verify(args.file, anchors)
    print(f"{args.file}: {verdict.state}" + (f" ({verdict.reason})" if verdict.reason else ""))
    made = dict(verdict.made)
    source = made.pop("digitalSourceType", "")
    if source:
        how = "a trained algorithm (generative AI)" if source == DIGITAL_SOURCE_TYPE else "not said"
        print(f"  made by: {how}; digitalSourceType {source}")
    for key in ("software", "model", "model_licence", "show", "artist", "signed by", "signed at"):
        if made.get(key):
            print(f"  {key.replace('_', ' ')}: {made[key]}")
    if verdict.manifest.get("prompt"):
        print(f"  prompt: {verdict.manifest['prompt']}")
    if verdict.manifest.get("time"):
        print(f"  captured: {verdict.manifest['time']} ({verdict.manifest.get('trigger', '')}, "
              f"by {verdict.manifest.get('fired_by', '')})")
    if not anchors_from:
        print(f"  note: no CA trusted: {DEFAULT_DIR / 'ca.pem'} does not exist; pass --trust CA.pem")
    return 0 if verdict.ok else (2 if verdict.state == UNREADABLE else 1)


def main(command: str, argv: list[str]) -> int:
    return {
        "devices": cmd_devices,
        "check": cmd_check,
        "tiny-model": cmd_tiny_model,
        "fetch-models": cmd_fetch_models,
        "credentials": cmd_credentials,
        "verify": cmd_verify,
    }[command](argv)
