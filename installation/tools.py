"""The tools beside the show: devices, check, tiny-model, fetch-models."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from .show import ShowError, load_show


def _print_table(title: str, rows: list[dict], empty: str) -> None:
    print(f"{title}:")
    if not rows:
        print(f"  {empty}")
        return
    for row in rows:
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))


def _show_argument(prog: str, description: str, argv: list[str]):
    """The show a tool is about (default: shows/default.toml), or None after saying why not."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("show", nargs="?", default=None, help="a show name in shows/ or a .toml path")
    args = p.parse_args(argv)
    try:
        return load_show(args.show)
    except ShowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


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


def _torch_report() -> str:
    try:
        import torch
    except Exception as exc:  # torch is optional for the preview path
        return f"PyTorch not importable ({exc}); run: make setup"
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return f"PyTorch {torch.__version__}, CUDA {torch.version.cuda}: {names}"
    return f"PyTorch {torch.__version__} on CPU (no CUDA GPU): diffusion will be slow, the preview generator is fast"


def cmd_check(argv: list[str]) -> int:
    show = _show_argument("python run.py check", "Report GPU, models, devices and display for a show.", argv)
    if show is None:
        return 2
    from .core.downloads import FETCH_COMMAND
    from .generation.engine.models import MODEL_LICENCES, model_available_locally
    from .speech.transcribe import resolve_whisper_model

    print(f"show: {show.show.name} ({show.path})")
    print(f"gpu: {_torch_report()}")

    present, reason = model_available_locally(show.generator.model, checkpoint_config=show.generator.checkpoint_config)
    licence = MODEL_LICENCES.get(show.generator.model, "see the model card")
    print(f"diffusion model: {show.generator.model}: {'present' if present else 'MISSING'} - {reason}")
    print(f"  licence: {licence}")
    if not present and show.generator.kind != "preview":
        print(f"  the show runs the preview generator until it is fetched: {FETCH_COMMAND}")
    if show.speech.enabled and show.microphone.source != "none":
        whisper = resolve_whisper_model(show.speech.model)
        where = "on disk" if os.path.isdir(whisper) else f"Hugging Face id: {FETCH_COMMAND} gets it"
        print(f"speech model: {show.speech.model} -> {whisper} [{where}]")

    from .display.presenter import list_monitors
    from .inputs.camera import list_cameras
    from .inputs.microphone import list_microphones, quiet_native_stderr

    with quiet_native_stderr():  # SDL and ALSA print noise on machines without screen or sound server
        cams, mics, mons = list_cameras(), list_microphones(), list_monitors()
    print(f"camera: show uses {show.camera.source!r}; devices found: {len(cams)}")
    print(f"microphone: show uses {show.microphone.source!r}; devices found: {len(mics)}")
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    print(f"display: {'DISPLAY=' + display if display else 'none (shows run headless)'}; monitors: {len(mons)}")
    for tool in ("ffmpeg", "espeak-ng"):
        print(f"{tool}: {'found' if shutil.which(tool) else 'not found (only needed to remake demo assets)'}")
    return 0


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
    from .generation.engine.tiny_model import write_tiny_model

    path = write_tiny_model(args.dest, seed=args.seed)
    print(f"wrote a tiny random-weight model to {path}; run it with: python run.py --model {path}")
    if args.single_file is not None:
        from .generation.engine.ldm_export import write_single_file

        file = write_single_file(path, args.single_file)
        print(f"wrote it as one checkpoint to {file}; a show runs it with generator.model = \"{file}\" "
              f"and generator.checkpoint_config = \"{path}\"")
    return 0


def cmd_fetch_models(argv: list[str]) -> int:
    show = _show_argument("python run.py fetch-models",
                          "Download the models a show needs into the Hugging Face cache (needs internet).", argv)
    if show is None:
        return 2
    from .generation.engine.models import fetch_checkpoint_config, fetch_model, locate, model_available_locally

    failures = 0
    model, checkpoint_config = show.generator.model, show.generator.checkpoint_config
    present, _ = model_available_locally(model, checkpoint_config=checkpoint_config)
    if present:
        print(f"{model}: already present")
    else:
        try:
            if locate(model).file is not None:  # the file is the show's own: only its configs are fetched
                print(f"{model}: configs fetched to {fetch_checkpoint_config(model, checkpoint_config)}")
            else:
                print(f"{model}: fetched to {fetch_model(model)}")
        except Exception as exc:
            failures += 1
            print(f"{model}: could not be fetched: {exc}", file=sys.stderr)
    # The streaming engine's extras: the fast autoencoder and the show's LoRAs (hub ids only).
    from .generation.engine.models import TAESD, TAESDXL, looks_like_hf_id, model_is_sdxl

    gen = show.generator
    extras = []
    if gen.autoencoder == "auto":
        sdxl = model_is_sdxl(gen.model, gen.checkpoint_config)
        extras.append(TAESDXL if sdxl else TAESD)
    elif gen.autoencoder != "full":
        extras.append(gen.autoencoder)
    extras += [ref for ref in (gen.lcm_lora, gen.lora) if ref]
    for ref in extras:
        if not looks_like_hf_id(ref) or os.path.exists(ref):
            continue
        try:
            print(f"{ref}: fetched to {fetch_model(ref)}")
        except Exception as exc:
            failures += 1
            print(f"{ref}: could not be fetched: {exc}", file=sys.stderr)
    if show.speech.enabled:
        from .speech.transcribe import fetch_whisper_model

        try:
            print(f"whisper {show.speech.model} ({show.speech.engine}): at {fetch_whisper_model(show.speech)}")
        except Exception as exc:
            failures += 1
            print(f"whisper {show.speech.model}: could not be fetched: {exc}", file=sys.stderr)
    return 1 if failures else 0


def main(command: str, argv: list[str]) -> int:
    return {
        "devices": cmd_devices,
        "check": cmd_check,
        "tiny-model": cmd_tiny_model,
        "fetch-models": cmd_fetch_models,
    }[command](argv)
