"""The fault injector (core/faults.py): one-shot faults, and each fault's life (armed, fired,
recovered) timed on the clock it is given."""

from __future__ import annotations

import threading

import pytest

from installation.core.faults import (
    DISK_FULL_S,
    EXTERNAL_FAULTS,
    FAULT_KINDS,
    INTERNAL_FAULTS,
    NO_FAULTS,
    FaultInjector,
)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_without_faults_nothing_is_armed_and_nothing_fires():
    with pytest.raises(ValueError, match="--faults"):
        NO_FAULTS.arm("camera_lost")
    assert not NO_FAULTS.take("camera_lost")
    assert not NO_FAULTS.disk_full()
    NO_FAULTS.worked("camera")
    assert NO_FAULTS.take_reports() == []


def test_an_unknown_or_external_kind_is_refused_by_name():
    faults = FaultInjector(enabled=True)
    with pytest.raises(ValueError, match="unknown fault 'bad_show'.*camera_lost"):
        faults.arm("bad_show")  # done to the app from outside, never armed inside it
    assert set(FAULT_KINDS) - set(EXTERNAL_FAULTS) <= set(INTERNAL_FAULTS)


def test_a_fault_fires_once_and_recovers_at_the_first_work_after_it():
    clock = Clock()
    faults = FaultInjector(enabled=True, clock=clock)
    faults.arm("camera_lost")
    clock.t = 100.5
    faults.worked("camera")  # work before the fault fired is not its recovery
    assert not faults.expecting("camera")
    assert faults.take("camera_lost")
    assert not faults.take("camera_lost")  # once
    assert faults.expecting("camera") and not faults.expecting("microphone")
    faults.worked("microphone", 101.0)  # another stage's work is not the camera's recovery
    faults.worked("camera", 100.4)  # stamped before the fault fired: not a recovery either
    faults.worked("camera", 101.25)
    faults.worked("camera", 102.0)  # only the first counts
    states = [(r.kind, r.state, r.recovered_after_s) for r in faults.take_reports()]
    assert states == [("camera_lost", "armed", None), ("camera_lost", "fired", None),
                      ("camera_lost", "recovered", 1.25)]
    assert faults.take_reports() == [] and not faults.expecting("camera")


def test_a_full_disk_lasts_its_second_and_the_first_write_after_it_is_the_recovery():
    clock = Clock()
    faults = FaultInjector(enabled=True, clock=clock)
    assert not faults.disk_full()
    faults.arm("disk_full")
    clock.t = 100.2
    assert faults.disk_full() and faults.disk_full()
    clock.t = 100.0 + DISK_FULL_S + 0.3
    assert not faults.disk_full()
    reports = faults.take_reports()
    assert [r.state for r in reports] == ["armed", "fired", "recovered"]
    assert reports[1].fired_mono == pytest.approx(100.2)
    assert reports[2].recovered_after_s == pytest.approx(DISK_FULL_S + 0.3)


def test_a_full_disk_no_writer_asked_about_never_fires():
    clock = Clock()
    faults = FaultInjector(enabled=True, clock=clock)
    faults.arm("disk_full")
    clock.t += DISK_FULL_S + 1
    assert not faults.disk_full()
    assert [r.state for r in faults.take_reports()] == ["armed"]


def test_stages_on_other_threads_take_each_fault_exactly_once():
    faults = FaultInjector(enabled=True)
    faults.arm("generator_raise")
    fired: list[bool] = []
    threads = [threading.Thread(target=lambda: fired.append(faults.take("generator_raise"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fired.count(True) == 1
