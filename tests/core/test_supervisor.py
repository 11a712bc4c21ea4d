"""The supervisor replaces a stage whose worker stalled or died, and gives up politely."""

import threading
import time

from installation.core.supervisor import Supervisor
from installation.core.worker import Worker, stop_all


class Stage(Worker):
    def __init__(self, name, hang: threading.Event | None = None, die: bool = False):
        super().__init__(name)
        self.hang = hang
        self.die = die
        self.steps = 0

    def run(self):
        if self.die:
            return  # the thread ends without being asked: a crash the Worker could not catch
        super().run()

    def step(self):
        self.steps += 1
        if self.hang is not None and self.hang.is_set():
            time.sleep(0.5)  # stuck in "C code": no heartbeat
            return
        self.sleep(0.01)


def test_a_stalled_stage_is_rebuilt_and_a_dead_one_too():
    hang = threading.Event()
    workers = [Stage("camera", hang=hang), Stage("generator", die=False)]
    events = []
    rebuilt = []

    def restart(stage):
        rebuilt.append(stage)
        for w in [w for w in workers if w.name == stage]:
            w.stop()
            workers.remove(w)
        fresh = Stage(stage)
        workers.append(fresh)
        fresh.start()

    sup = Supervisor(lambda w: w.name, restart, lambda e, **f: events.append((e, f)), stall_s=0.2, interval_s=0.0)
    for w in workers:
        w.start()
    try:
        time.sleep(0.1)
        assert sup.check(workers) == []
        hang.set()
        deadline = time.monotonic() + 5
        while "camera" not in rebuilt and time.monotonic() < deadline:
            sup.check(workers)
            time.sleep(0.05)
        assert rebuilt == ["camera"]
        assert events[0][0] == "restart" and events[0][1]["why"] == "stalled"
        # A dead worker (its thread ended without being asked) is rebuilt as well.
        dying = Stage("generator", die=True)
        workers[:] = [w for w in workers if w.name != "generator"] + [dying]
        dying.start()
        dying.join(2)
        sup.check(workers)
        assert rebuilt[-1] == "generator" and events[-1][1]["why"] == "died"
    finally:
        hang.clear()
        stop_all(workers)


def test_gives_up_after_too_many_restarts():
    events = []
    w = Stage("camera")
    w.start()
    w.stop()
    w.join(2)
    w.stop_event.clear()  # looks like it died on its own

    sup = Supervisor(lambda w: w.name, lambda stage: None, lambda e, **f: events.append((e, f)),
                     interval_s=0.0, max_restarts=2, window_s=60)
    for _ in range(5):
        sup.check([w])
    kinds = [e for e, _ in events]
    assert kinds.count("restart") == 2 and kinds.count("error") == 1
    assert "not restarting it again" in events[-1][1]["reason"]


def test_running_show_rebuilds_stages_and_keeps_presenting(tmp_path):
    from control.test_osc_surface import start_app

    app, thread = start_app(tmp_path)
    try:
        old_camera = [w for w in app.workers if app.stage_of(w) == "camera"]
        old_generator = app.generator_worker
        for stage in ("camera", "generator"):
            app.restart_stage(stage)
        assert all(w not in app.workers for w in old_camera) and app.generator_worker is not old_generator
        deadline = time.monotonic() + 10
        version = app.frame_slot.version
        while app.frame_slot.version < version + 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.frame_slot.version >= version + 5, "no frames after the restart"
        assert {app.stage_of(w) for w in app.workers} == {"camera", "generator"}
        assert all(w.is_alive() for w in app.workers)
    finally:
        app.stop_event.set()
        thread.join(15)
    assert not thread.is_alive()
