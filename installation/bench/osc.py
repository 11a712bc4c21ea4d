"""OSC benchmark: message-to-effect latency and the rate the server holds under a flood,
beside the baseline a user would write (a bare python-osc server whose handler sets a value).

    python -m installation.bench osc [--json] [--seconds 10] [--rate 10000] [--samples 300]

Latency is from the datagram leaving the sender to the new value being visible where the
generator reads it (Jadong: the params slot, after the main thread applied it between two
frames; baseline: the handler's variable). The flood comes from a separate process, as QLab's
would, paced at --rate messages a second; the show keeps presenting meanwhile and its display
rate is sampled every 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_server import BlockingOSCUDPServer

FLOOD_SENDER = r"""
import socket, sys, time
from pythonosc.osc_message_builder import OscMessageBuilder
port, rate, seconds = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
msgs = []
for i in range(1000):
    b = OscMessageBuilder(address="/jadong/strength"); b.add_arg(i / 1000.0); msgs.append(b.build().dgram)
sent, start = 0, time.monotonic()
while True:
    now = time.monotonic() - start
    if now >= seconds:
        break
    due = int(now * rate)
    while sent < due:
        sock.sendto(msgs[sent % 1000], ("127.0.0.1", port)); sent += 1
    time.sleep(0.0005)
b = OscMessageBuilder(address="/jadong/strength"); b.add_arg(0.4242)
sock.sendto(b.build().dgram, ("127.0.0.1", port)); sent += 1
print(sent)
"""


def _dgram(address: str, *args) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _flood(port: int, rate: float, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", FLOOD_SENDER, str(port), str(rate), str(seconds)],
                            stdout=subprocess.PIPE, text=True)


# --- the baseline: what a user would write with python-osc alone -----------------------------
class Baseline:
    def __init__(self) -> None:
        self.value = None
        self.changed = threading.Event()
        self.count = 0
        d = Dispatcher()
        d.map("/jadong/strength", self._set)
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), d)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def _set(self, _address, value):
        self.value = value
        self.count += 1
        self.changed.set()

    def latency(self, sock: socket.socket, samples: int) -> list[float]:
        out = []
        for i in range(samples):
            self.changed.clear()
            t0 = time.perf_counter()
            sock.sendto(_dgram("/jadong/strength", (i % 997) / 997.0), ("127.0.0.1", self.port))
            self.changed.wait(2.0)
            out.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.002)
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- Jadong ------------------------------------------------------------------------------------
def _start_show(tmp: Path):
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from installation.app import RunOptions
    from installation.harness import start_show_thread
    from installation.show import parse_show

    show = parse_show({
        "show": {"name": "bench-osc"},
        "camera": {"source": "assets/demo_loop.mp4"},
        "microphone": {"source": "none"},
        "generator": {"kind": "preview", "width": 256, "height": 256},
        "display": {"mode": "headless", "width": 1280, "height": 720, "fps": 60},
        "osc": {"port": 0},
    }, tmp / "bench.toml")
    return start_show_thread(show, RunOptions(log_path=tmp / "events.jsonl"))


def jadong_latency(app, sock: socket.socket, samples: int) -> list[float]:
    out = []
    slot = app.params_slot
    for i in range(samples):
        value = round((i % 997) / 997.0, 6)
        _, version = slot.get_with_version()
        t0 = time.perf_counter()
        sock.sendto(_dgram("/jadong/strength", value), ("127.0.0.1", app.osc.port))
        deadline = t0 + 2.0
        while time.perf_counter() < deadline:
            params, version = slot.wait_newer(version, timeout=max(0.0, deadline - time.perf_counter()))
            if params is not None and abs(params.strength - value) < 1e-6:
                break
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.002)
    return out


def run(seconds: float, rate: float, samples: int) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    # Baseline first, alone on the machine.
    base = Baseline()
    base_lat = base.latency(sock, samples)
    count_before = base.count
    flood = _flood(base.port, rate, seconds)
    sent_base = int(flood.communicate(timeout=seconds + 30)[0].strip())
    time.sleep(0.3)
    base_received, base_last = base.count - count_before, base.value
    base.close()

    with TemporaryDirectory() as tmp:
        app, thread = _start_show(Path(tmp))
        try:
            lat = jadong_latency(app, sock, samples)
            received_before = app.osc.stats().received
            fps_samples: list[float] = []
            flood = _flood(app.osc.port, rate, seconds)
            t0 = time.monotonic()
            while flood.poll() is None:
                time.sleep(0.1)
                if time.monotonic() - t0 > 1.0:  # the rate meter's window is full by then
                    fps_samples.append(app.presenter.fps)
            sent = int(flood.communicate(timeout=30)[0].strip())
            time.sleep(0.5)
            received = app.osc.stats().received - received_before
            latest = app.params_slot.get().strength
            dropped_controls = app.controls.stats().dropped
            target_fps = app.show.display.fps
        finally:
            from installation.harness import stop_show_thread

            stop_show_thread(app, thread)
    sock.close()
    return {
        "machine": f"{os.cpu_count()} CPU cores, {sys.platform}",
        "samples": samples,
        "latency_p50_ms": round(statistics.median(lat), 3),
        "latency_p95_ms": round(_pct(lat, 0.95), 3),
        "baseline_latency_p50_ms": round(statistics.median(base_lat), 3),
        "baseline_latency_p95_ms": round(_pct(base_lat, 0.95), 3),
        "flood_rate": rate,
        "flood_seconds": seconds,
        "flood_sent": sent,
        "flood_received": received,
        "held_rate": round(received / seconds, 1),
        "latest_value_intact": abs(latest - 0.4242) < 1e-4,
        "controls_dropped": dropped_controls,
        "display_fps_target": target_fps,
        "display_fps_during_flood_min": round(min(fps_samples), 1) if fps_samples else None,
        "display_fps_during_flood_mean": round(statistics.fmean(fps_samples), 1) if fps_samples else None,
        "baseline_flood_sent": sent_base,
        "baseline_flood_received": base_received,
        "baseline_latest_value_intact": base_last is not None and abs(base_last - 0.4242) < 1e-4,
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m installation.bench osc", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--seconds", type=float, default=10.0, help="flood length (default 10)")
    p.add_argument("--rate", type=float, default=10000.0, help="flood messages per second (default 10000)")
    p.add_argument("--samples", type=int, default=300, help="latency samples (default 300)")
    args = p.parse_args(argv)
    r = run(args.seconds, args.rate, args.samples)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"OSC benchmark on {r['machine']}")
    print(f"{'':34}{'Jadong':>14}{'python-osc baseline':>22}")
    print(f"{'message-to-effect p50 (ms)':34}{r['latency_p50_ms']:>14.3f}{r['baseline_latency_p50_ms']:>22.3f}")
    print(f"{'message-to-effect p95 (ms)':34}{r['latency_p95_ms']:>14.3f}{r['baseline_latency_p95_ms']:>22.3f}")
    print(f"flood: {r['flood_rate']:.0f} msg/s for {r['flood_seconds']:.0f} s from another process")
    print(f"{'  messages sent':34}{r['flood_sent']:>14}{r['baseline_flood_sent']:>22}")
    print(f"{'  messages received':34}{r['flood_received']:>14}{r['baseline_flood_received']:>22}")
    print(f"{'  rate held (msg/s)':34}{r['held_rate']:>14.0f}"
          f"{r['baseline_flood_received'] / r['flood_seconds']:>22.0f}")
    print(f"{'  latest value intact':34}{str(r['latest_value_intact']):>14}"
          f"{str(r['baseline_latest_value_intact']):>22}")
    print(f"{'  display fps (target ' + str(int(r['display_fps_target'])) + ') min/mean':34}"
          f"{str(r['display_fps_during_flood_min']) + ' / ' + str(r['display_fps_during_flood_mean']):>14}"
          f"{'(no display)':>22}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
