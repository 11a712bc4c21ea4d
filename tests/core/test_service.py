"""systemd's notify protocol (core/service.py) against real AF_UNIX datagram sockets: a path
and an abstract name, what systemd-notify(1) itself sends, a queue nobody reads, a socket that
is gone. The timing policy runs on a fake clock."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from installation.core.service import (
    STATUS_MAX_CHARS,
    Notifier,
    ServiceNotifier,
    notify_address,
    one_line,
    watchdog_period_s,
)
from notify_socket import NotifySocket


@pytest.fixture
def receiver(tmp_path):
    r = NotifySocket(tmp_path)
    yield r
    r.close()


def test_addresses_paths_and_abstract_names():
    assert notify_address("/run/user/1000/systemd/notify") == "/run/user/1000/systemd/notify"
    assert notify_address("@/org/freedesktop/systemd1/notify") == "\0/org/freedesktop/systemd1/notify"
    assert notify_address("vsock:2:1234") is None
    assert notify_address("@") is None
    assert notify_address("relative/path") is None


def test_a_status_is_one_line_and_cannot_add_assignments():
    assert one_line("show gallery\nREADY=1\r\tcue 2") == "show gallery READY=1 cue 2"
    long = one_line("x" * 1000)
    assert len(long) == STATUS_MAX_CHARS and long.endswith("…")


def test_watchdog_period_from_the_environment():
    assert watchdog_period_s({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_period_s({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}) == 0.2
    assert watchdog_period_s({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}) is None  # another process's
    assert watchdog_period_s({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_period_s({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_period_s({}) is None


def test_no_notify_socket_builds_nothing():
    assert ServiceNotifier.from_environment({}) is None
    assert ServiceNotifier.from_environment({"NOTIFY_SOCKET": ""}) is None


def test_an_unknown_socket_kind_is_reported_not_raised():
    reasons: list[str] = []
    assert ServiceNotifier.from_environment({"NOTIFY_SOCKET": "vsock:2:99"}, on_error=reasons.append) is None
    assert len(reasons) == 1 and "vsock:2:99" in reasons[0]


def test_messages_reach_a_path_socket_as_utf8(receiver):
    service = ServiceNotifier.from_environment({"NOTIFY_SOCKET": receiver.env_value})
    assert service is not None
    service.presented(0.0, lambda: "show 바다 · cue 1 dawn")
    service.stopping("stopping")
    got = receiver.wait_for("STOPPING")
    texts = [m.text for m in receiver.received()]
    assert texts == ["READY=1\nSTATUS=show 바다 · cue 1 dawn", "STOPPING=1\nSTATUS=stopping"], texts
    assert got[0].fields["STOPPING"] == "1"
    service.close()


def test_messages_reach_an_abstract_socket():
    receiver = NotifySocket(abstract=True)
    try:
        service = ServiceNotifier.from_environment({"NOTIFY_SOCKET": receiver.env_value,
                                                    "WATCHDOG_USEC": "1000000"})
        assert service is not None and service.ping_every_s == 0.5
        service.presented(10.0, lambda: "ok")
        service.presented(10.6, lambda: "ok")
        receiver.wait_for("WATCHDOG")
        assert [m.text for m in receiver.received()] == ["READY=1\nSTATUS=ok", "WATCHDOG=1"]
        service.close()
    finally:
        receiver.close()


@pytest.mark.skipif(shutil.which("systemd-notify") is None, reason="systemd-notify is not installed")
def test_the_same_datagram_as_systemd_notify(receiver):
    """systemd's own client, on the same socket: Jadong's READY with a status is byte for byte
    what `systemd-notify --ready --status=...` sends."""
    env = dict(os.environ, NOTIFY_SOCKET=receiver.env_value)
    # --no-block: no barrier to wait for (only systemd itself answers one).
    subprocess.run(["systemd-notify", "--no-block", "--ready", "--status=show gallery · cue 2 dawn"], env=env,
                   check=True, timeout=10)
    theirs = receiver.wait_for("READY")[0].text
    Notifier(receiver.env_value).send("READY=1\nSTATUS=show gallery · cue 2 dawn")
    ours = receiver.wait_for("READY", count=2)[1].text
    assert ours == theirs


def test_a_full_queue_never_blocks_and_is_reported_once(tmp_path):
    """Nobody reads the socket (systemd busy, a stale NOTIFY_SOCKET): sends fail at once with
    EAGAIN, the display loop never waits, and the event log hears it once."""
    path = str(tmp_path / "unread.sock")
    unread = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    unread.bind(path)
    reasons: list[str] = []
    notifier = Notifier(path, on_error=reasons.append)
    try:
        done = threading.Event()
        results: list[bool] = []

        def flood() -> None:
            results.extend(notifier.send("WATCHDOG=1") for _ in range(2000))
            done.set()

        threading.Thread(target=flood, daemon=True).start()
        assert done.wait(10.0), "a send blocked on a full queue"
        assert results.count(False) > 0 and notifier.dropped == results.count(False)
        assert notifier.sent == results.count(True) > 0
        assert len(reasons) == 1 and "queue is full" in reasons[0]
    finally:
        notifier.close()
        unread.close()


def test_a_socket_that_is_gone_is_reported_once(tmp_path):
    reasons: list[str] = []
    notifier = Notifier(str(tmp_path / "nobody.sock"), on_error=reasons.append)
    assert [notifier.send("WATCHDOG=1") for _ in range(3)] == [False, False, False]
    assert notifier.dropped == 3 and len(reasons) == 1 and "nobody.sock" in reasons[0]
    notifier.close()
    assert notifier.send("WATCHDOG=1") is False  # closed: still never raises


class Captured:
    """A Notifier's place: what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, message: str) -> bool:
        self.sent.append(message)
        return True

    def close(self) -> None:
        pass


def test_ready_once_then_pings_every_half_period_and_status_only_on_change():
    captured = Captured()
    service = ServiceNotifier(captured, watchdog_s=0.2, status_every_s=2.0)  # type: ignore[arg-type]
    calls: list[float] = []
    state = {"text": "cue 1"}

    def status() -> str:
        calls.append(0)
        return state["text"]

    ping_t = []
    for i in range(61):  # 60 frames a second for one second, from t = 100
        sent = len(captured.sent)
        service.presented(100.0 + i / 60, status)
        if len(captured.sent) > sent and "WATCHDOG=1" in captured.sent[-1]:
            ping_t.append(100.0 + i / 60)
    assert captured.sent[0] == "READY=1\nSTATUS=cue 1"
    # Every half period (0.1 s), on the first frame at or past it: never more than a frame late.
    gaps = [b - a for a, b in zip([100.0, *ping_t], ping_t)]
    assert len(ping_t) >= 8 and all(0.1 - 1e-9 <= g <= 0.1 + 1 / 60 + 1e-9 for g in gaps), gaps
    assert len(calls) == 1  # a status was not due again within the second: not even built
    service.presented(102.0, status)  # due, unchanged: nothing sent for it
    assert not any("STATUS" in m for m in captured.sent[1:])
    state["text"] = "cue 2"
    service.presented(103.0, status)  # due only at 104
    service.presented(104.0, status)
    statuses = [m for m in captured.sent if "STATUS=cue 2" in m]
    assert statuses == ["WATCHDOG=1\nSTATUS=cue 2"]


def test_without_a_watchdog_period_only_ready_and_status():
    captured = Captured()
    service = ServiceNotifier(captured, watchdog_s=None, status_every_s=1.0)  # type: ignore[arg-type]
    for i in range(300):
        service.presented(i / 60, lambda: "steady")
    assert captured.sent == ["READY=1\nSTATUS=steady"]


def test_no_thread_pings_for_the_loop(receiver):
    """Pings come only from the loop's `presented`: the notifier starts no thread that could
    keep systemd content while the loop hangs, and after a hang the first frame pings at once."""
    before = set(threading.enumerate())
    service = ServiceNotifier.from_environment({"NOTIFY_SOCKET": receiver.env_value, "WATCHDOG_USEC": "200000"})
    assert service is not None
    service.presented(0.0, lambda: "x")
    service.presented(0.1, lambda: "x")
    assert set(threading.enumerate()) == before
    receiver.wait_for("WATCHDOG")
    time.sleep(0.3)  # as long as three periods with no frame: nothing more arrives
    assert len(receiver.with_field("WATCHDOG")) == 1
    service.presented(5.0, lambda: "x")
    assert len(receiver.wait_for("WATCHDOG", count=2)) == 2
    service.close()
