"""Speech benchmark: how long a visitor waits, from the last voiced sample of what they said
to its final transcript, and to the first presented frame of the prompt made from it; beside
the baseline a user would otherwise write (faster-whisper with its built-in VAD over fixed
5 s windows, the shape of most "live Whisper" scripts).

    python -m installation.bench speech [--json] [--utterances 10] [--model tiny.en] [--no-frames]

The test audio is built here: espeak-ng sentences of 1-5 s (en-us, 150 words a minute) with
the silence trimmed, so the last voiced sample of each is known exactly, 2 s of room tone
between them, played through the real path in real time (WAV source paced like a microphone
→ MicWorker → SpeechWorker with the show's default endpointing → Whisper). Latency = the
transcript's stamp minus the capture time of that last voiced sample. The frame latency runs
the whole App (headless display, preview generator) on the same audio and reads its event log:
`presented` (the first frame of a speech prompt on screen) minus the last voiced sample.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 16000
SENTENCES = [
    "a red fox",
    "golden castle",
    "a small boat on a lake",
    "a red fox in the snow",
    "a golden castle on a green hill",
    "an old tree full of yellow birds",
    "paint a lighthouse in a storm at night with big waves",
    "the city at night with bright lights and rain on the streets",
    "a quiet garden at dawn with soft light and a small white cat asleep on the wall",
    "a tall ship with red sails crossing a dark ocean under a sky full of stars and clouds",
]
GAP_S = 2.0


@dataclass(frozen=True)
class Spoken:
    text: str
    start_s: float  # offset of the first voiced sample in the stream
    end_s: float  # offset of the last voiced sample

    @property
    def duration(self) -> float:
        return self.end_s - self.start_s


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] if values else float("nan")


def _rss_mb() -> tuple[float, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM), in MB."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return peak, peak
    return out.get("VmRSS", 0.0), out.get("VmHWM", 0.0)


def _trim(x: np.ndarray) -> np.ndarray:
    """Cut leading and trailing silence at sample precision (espeak-ng pads its output)."""
    idx = np.flatnonzero(np.abs(x) > 10 ** (-50 / 20))
    return x[idx[0] : idx[-1] + 1] if len(idx) else x[:0]


def build_audio(folder: Path, count: int) -> tuple[Path, list[Spoken]]:
    """The benchmark stream as a 16 kHz WAV, and where each utterance lies in it."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("the speech benchmark needs espeak-ng (Debian: apt-get install espeak-ng)")
    from installation.inputs.wav import read_wav, resample

    rng = np.random.default_rng(0)
    room = lambda s: (10 ** (-65 / 20) * rng.standard_normal(int(s * SR))).astype(np.float32)  # noqa: E731
    pieces, spoken, pos = [room(1.0)], [], 1.0
    for i in range(count):
        text = SENTENCES[i % len(SENTENCES)]
        raw = folder / f"u{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
        wav = read_wav(raw)
        x = _trim(resample(wav.samples, wav.sample_rate, SR))
        spoken.append(Spoken(text, pos, pos + (len(x) - 1) / SR))
        pieces += [x, room(GAP_S)]
        pos += len(x) / SR + GAP_S
    signal = np.concatenate(pieces)
    path = folder / "bench_speech.wav"
    _write_wav(path, signal)
    return path, spoken


def _write_wav(path: Path, x: np.ndarray) -> None:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def _match(spoken: list[Spoken], end_offsets: list[float]) -> dict[int, float]:
    """Which utterance each transcript belongs to (its end within 0.3 s of a known end)."""
    out = {}
    for k, e in enumerate(end_offsets):
        i = int(np.argmin([abs(s.end_s - e) for s in spoken]))
        if abs(spoken[i].end_s - e) < 0.3 and i not in out:
            out[i] = k
    return out


# --- Jadong: the speech thread on a paced stream --------------------------------------------
def run_jadong(wav: Path, spoken: list[Spoken], model: str, partials: bool) -> dict:
    from installation.core.channels import DropOldestQueue
    from installation.core.messages import AudioChunk, Transcript
    from installation.core.worker import stop_all
    from installation.inputs.microphone import MicWorker
    from installation.inputs.wav import WavFileSource
    from installation.show import SpeechConfig
    from installation.speech.endpointing import Endpointer
    from installation.speech.transcribe import load_transcriber
    from installation.speech.worker import SpeechWorker

    cfg = SpeechConfig(model=model, language="en", partials=partials)
    transcriber = load_transcriber(cfg)
    audio: DropOldestQueue[AudioChunk] = DropOldestQueue("audio", 1500)
    out: DropOldestQueue[Transcript] = DropOldestQueue("transcripts", 256)
    source = WavFileSource(wav, chunk_ms=20, paced=True)
    mic = MicWorker(source, audio)
    speech = SpeechWorker(audio, transcriber, Endpointer(cfg), out, cfg=cfg)
    speech.start()
    deadline = time.monotonic() + 120
    while not speech.is_alive() or not getattr(transcriber, "loaded", True):
        if time.monotonic() > deadline:
            raise SystemExit("the transcriber did not load")
        time.sleep(0.05)
    time.sleep(0.5)  # the VAD model loads right after
    mic.start()
    while (started := source.started_at) is None:
        time.sleep(0.01)
    t0 = started  # kept: the source forgets it once closed
    length = spoken[-1].end_s + GAP_S
    finals: list[Transcript] = []
    end = time.monotonic() + length + 3.0
    while time.monotonic() < end:
        got = out.get(timeout=0.2)
        if isinstance(got, Transcript) and got.final:
            finals.append(got)
    stop_all([mic, speech], timeout=10.0)
    offsets = [f.utterance_end_t - t0 for f in finals]
    matched = _match(spoken, offsets)
    lat = [(finals[k].t - (t0 + spoken[i].end_s)) * 1000 for i, k in matched.items()]
    return {
        "latencies_ms": lat,
        "heard": len(finals),
        "matched": len(matched),
        "texts": [f.text for f in finals],
        "rtf": speech.rtf,
        "speculative_hits": speech.speculative_hits,
        "speculative_misses": speech.speculative_misses,
        "partials": speech.partials,
        "transcriber": transcriber,
    }


# --- the baseline: faster-whisper's own VAD over fixed 5 s windows ---------------------------
def run_baseline(wav: Path, spoken: list[Spoken], transcriber, window_s: float = 5.0) -> dict:
    """Each window is decoded once it has been captured (and the previous decode is done),
    with `vad_filter=True`. An utterance is out when the window holding its last voiced
    sample is decoded; one crossing a window edge comes out in two pieces."""
    from installation.inputs.wav import load_wav_16k

    x = load_wav_16k(wav)
    model = transcriber.whisper_model
    n = int(window_s * SR)
    busy_until = 0.0
    done_at: list[float] = []
    decode_s: list[float] = []
    for k in range(0, int(np.ceil(len(x) / n))):
        chunk = x[k * n : (k + 1) * n]
        ready = (k + 1) * window_s
        t = time.perf_counter()
        segments, _ = model.transcribe(chunk, language="en", beam_size=1, vad_filter=True,
                                       condition_on_previous_text=False)
        "".join(s.text for s in segments)
        spent = time.perf_counter() - t
        decode_s.append(spent)
        busy_until = max(busy_until, ready) + spent
        done_at.append(busy_until)
    lat, split = [], 0
    for s in spoken:
        k_end, k_start = int(s.end_s // window_s), int(s.start_s // window_s)
        split += k_end != k_start
        lat.append((done_at[k_end] - s.end_s) * 1000)
    return {"latencies_ms": lat, "split": split, "rtf": sum(decode_s) / (len(x) / SR)}


# --- end of speech to the first presented frame, through the whole App -------------------------
def run_frames(wav: Path, spoken: list[Spoken], model: str, folder: Path) -> dict:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from installation.app import App, RunOptions
    from installation.inputs.microphone import MicWorker
    from installation.inputs.wav import WavFileSource
    from installation.show import parse_show

    length = spoken[-1].end_s + GAP_S
    show = parse_show({
        "show": {"name": "bench-speech"},
        "camera": {"source": "none"},
        "microphone": {"source": str(wav)},
        "speech": {"model": model, "language": "en"},
        "generator": {"kind": "preview", "width": 256, "height": 256},
        "display": {"mode": "headless", "width": 640, "height": 360, "fps": 60},
        "osc": {"enabled": False},
    }, folder / "bench.toml")
    log = folder / "events.jsonl"
    app = App(show, RunOptions(seconds=length + 20.0, log_path=log))
    thread = threading.Thread(target=app.run, name="show", daemon=True)
    thread.start()
    t0 = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and t0 is None:
        mic = next((w for w in app.workers if isinstance(w, MicWorker)), None)
        if mic is not None and isinstance(mic.source, WavFileSource):
            t0 = mic.source.started_at
        time.sleep(0.01)
    if t0 is None:
        app.stop_event.set()
        raise SystemExit("the show's microphone did not start")
    # The WAV starts playing as the show starts, while Whisper may still be loading: the
    # first second of the stream is room tone, and the speech thread catches up from its queue.
    while time.monotonic() < t0 + length + 3.0:
        time.sleep(0.2)
    app.stop_event.set()
    thread.join(30)
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    ready = next((e["mono"] for e in events if e["event"] == "speech_ready"), t0)
    transcripts = [e for e in events if e["event"] == "transcript"]
    presented = [e for e in events if e["event"] == "presented" and e.get("source") == "speech"]
    lat = []
    for e in transcripts:
        offset = e["utterance_end"] - t0
        i = int(np.argmin([abs(s.end_s - offset) for s in spoken]))
        if abs(spoken[i].end_s - offset) > 0.3 or t0 + spoken[i].start_s < ready:
            continue  # spoken while Whisper was still loading: not a visitor's wait
        after = [p["mono"] for p in presented if p["mono"] >= e["mono"] and e["english"].rstrip(" .!?") in p["prompt"]]
        if after:
            lat.append((after[0] - (t0 + spoken[i].end_s)) * 1000)
    return {"latencies_ms": lat, "presented": len(presented)}


def run(count: int, model: str, frames: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wav, spoken = build_audio(folder, count)
        jad = run_jadong(wav, spoken, model, partials=True)
        rss_now, rss_peak = _rss_mb()
        nopart = run_jadong(wav, spoken, model, partials=False)
        base = run_baseline(wav, spoken, jad["transcriber"])
        fr = run_frames(wav, spoken, model, folder) if frames else {"latencies_ms": [], "presented": 0}
    lat = jad["latencies_ms"]
    return {
        "machine": f"{os.cpu_count()} CPU cores, {sys.platform}",
        "model": model,
        "utterances": count,
        "utterance_s_min": round(min(s.duration for s in spoken), 2),
        "utterance_s_max": round(max(s.duration for s in spoken), 2),
        "transcripts": jad["heard"],
        "transcripts_matched": jad["matched"],
        "transcript_p50_ms": round(statistics.median(lat), 1) if lat else None,
        "transcript_p95_ms": round(_pct(lat, 0.95), 1) if lat else None,
        "speculative_hits": jad["speculative_hits"],
        "speculative_misses": jad["speculative_misses"],
        "partials": jad["partials"],
        "no_partials_p50_ms": round(statistics.median(nopart["latencies_ms"]), 1) if nopart["latencies_ms"] else None,
        "no_partials_p95_ms": round(_pct(nopart["latencies_ms"], 0.95), 1) if nopart["latencies_ms"] else None,
        "baseline_p50_ms": round(statistics.median(base["latencies_ms"]), 1),
        "baseline_p95_ms": round(_pct(base["latencies_ms"], 0.95), 1),
        "baseline_split": base["split"],
        "baseline_rtf": round(base["rtf"], 3),
        "frame_p50_ms": round(statistics.median(fr["latencies_ms"]), 1) if fr["latencies_ms"] else None,
        "frame_p95_ms": round(_pct(fr["latencies_ms"], 0.95), 1) if fr["latencies_ms"] else None,
        "frames_measured": len(fr["latencies_ms"]),
        "rtf": round(jad["rtf"], 3),
        "rss_mb": round(rss_now, 1),
        "rss_peak_mb": round(rss_peak, 1),
        "texts": jad["texts"],
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m installation.bench speech", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--utterances", type=int, default=10, help="utterances of 1-5 s (default 10)")
    p.add_argument("--model", default="tiny.en", help="Whisper model (default tiny.en)")
    p.add_argument("--no-frames", action="store_true", help="skip the whole-App frame latency run")
    args = p.parse_args(argv)
    r = run(max(2, args.utterances), args.model, not args.no_frames)
    if args.json:
        print(json.dumps({k: v for k, v in r.items() if k != "texts"}))
        return 0
    print(f"Speech benchmark on {r['machine']}, Whisper {r['model']}, {r['utterances']} utterances of "
          f"{r['utterance_s_min']}-{r['utterance_s_max']} s (espeak-ng), played in real time")
    print(f"{'last voiced sample -> final transcript':40}{'p50 ms':>10}{'p95 ms':>10}")
    print(f"{'  Jadong (VAD, partials, speculative)':40}{r['transcript_p50_ms']!s:>10}{r['transcript_p95_ms']!s:>10}")
    print(f"{'  Jadong without partials':40}{r['no_partials_p50_ms']!s:>10}{r['no_partials_p95_ms']!s:>10}")
    print(f"{'  baseline: vad_filter, fixed 5 s windows':40}{r['baseline_p50_ms']!s:>10}{r['baseline_p95_ms']!s:>10}"
          f"   ({r['baseline_split']} of {r['utterances']} utterances split across windows)")
    print(f"{'last voiced sample -> presented frame':40}{r['frame_p50_ms']!s:>10}{r['frame_p95_ms']!s:>10}"
          f"   (preview generator, {r['frames_measured']} measured)")
    print(f"transcripts: {r['transcripts']} ({r['transcripts_matched']} matched one-to-one); speculative finals "
          f"used {r['speculative_hits']}, wasted {r['speculative_misses']}; partials {r['partials']}")
    print(f"real-time factor {r['rtf']} (baseline {r['baseline_rtf']}); "
          f"memory {r['rss_mb']} MB (peak {r['rss_peak_mb']} MB)")
    for t in r["texts"]:
        print(f"  heard: {t}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
