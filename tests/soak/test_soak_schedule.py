"""When the soak injects which fault (soak/schedule.py)."""

from __future__ import annotations

import pytest

from installation.core.faults import FAULT_KINDS
from installation.soak.schedule import FIRST_S, SPACING_S, TAIL_S, WARMUP_S, left_out, plan


def test_three_minutes_hold_every_kind_once_with_the_restart_first():
    faults = plan(3)
    assert sorted(f.kind for f in faults) == sorted(FAULT_KINDS)
    assert faults[0].kind == "sigterm_restart" and faults[0].at_s == WARMUP_S
    times = [f.at_s for f in faults]
    assert times == sorted(times) and times[1] == FIRST_S
    assert all(b - a >= SPACING_S - 1e-9 for a, b in zip(times[1:], times[2:], strict=False))
    assert times[-1] <= 3 * 60 - TAIL_S
    assert left_out(faults) == []


def test_an_hour_repeats_the_faults_but_restarts_only_once():
    faults = plan(60, seed=3)
    kinds = [f.kind for f in faults]
    assert kinds.count("sigterm_restart") == 1  # memory from minute 1 on is one process's
    for kind in FAULT_KINDS:
        if kind != "sigterm_restart":
            assert kinds.count(kind) >= 20, kind
    assert faults[-1].at_s <= 3600 - TAIL_S
    assert plan(60, seed=3) == faults  # the same seed, the same soak
    assert [f.kind for f in plan(60, seed=4)] != kinds


def test_a_short_soak_says_what_it_had_no_room_for():
    faults = plan(1)
    assert [f.kind for f in faults] == ["sigterm_restart", "camera_lost"]
    assert "osc_flood" in left_out(faults)
    assert plan(0.2) == []


def test_kinds_can_be_chosen_and_unknown_ones_are_named():
    assert {f.kind for f in plan(3, kinds=("bad_show", "osc_flood"))} == {"bad_show", "osc_flood"}
    with pytest.raises(ValueError, match="unknown fault kinds.*'gremlins'"):
        plan(3, kinds=("gremlins",))
