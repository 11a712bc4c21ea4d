"""Native library noise is silenced; other threads' lines written meanwhile are not lost."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_a_log_line_from_another_thread_during_the_quiet_window_still_reaches_the_console():
    """Issue #15: with descriptor 2 pointed at /dev/null while PortAudio was probed, the
    OSC server's "listening" line (another thread) never printed."""
    code = (
        "import logging, os, threading\n"
        "from installation.core.native_stderr import quiet_native_stderr\n"
        "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')\n"
        "inside = threading.Event(); logged = threading.Event()\n"
        "def other():\n"
        "    inside.wait(5)\n"
        "    logging.getLogger('jadong.osc').info('OSC: listening on udp 127.0.0.1:9000')\n"
        "    logged.set()\n"
        "t = threading.Thread(target=other); t.start()\n"
        "with quiet_native_stderr():\n"
        "    os.write(2, b'ALSA lib pcm.c:2722:(snd_pcm_open_noupdate) Unknown PCM cards.pcm.rear\\n')\n"
        "    inside.set(); logged.wait(5)\n"
        "    os.write(2, b'Cannot connect to server socket err = No such file or directory\\n')\n"
        "t.join()\n"
        "logging.getLogger('jadong').info('after')\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["INFO jadong.osc: OSC: listening on udp 127.0.0.1:9000", "INFO jadong: after"]


def test_noise_patterns_match_library_lines_not_ours():
    from installation.core.native_stderr import is_native_noise

    for noise in (b"ALSA lib confmisc.c:855:(parse_card) cannot find card '0'\n",
                  b"error: XDG_RUNTIME_DIR is invalid or not set in the environment.\n",
                  b"Expression 'alsa_snd_pcm_hw_params(pcm, hwParams)' failed in 'src/hostapi/alsa/pa_linux_alsa.c', "
                  b"line: 924\n",
                  b"jack server is not running or cannot be started\n",
                  b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
                  b"W0000 00:00:1796026384.596315   16435 inference_feedback_manager.cc:114] Feedback manager\n"):
        assert is_native_noise(noise), noise
    for ours in (b"07:40:01 WARNING jadong.app: no speech this run: no microphone\n",
                 b"Traceback (most recent call last):\n", b"error: --seconds must be above 0\n"):
        assert not is_native_noise(ours), ours
