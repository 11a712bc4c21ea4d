"""The one device rule every engine follows (core/devices.py): "auto" takes a GPU when the
engine's library sees one; a requested GPU that is missing runs on the CPU, and says so."""

from __future__ import annotations

import logging

import pytest

from installation.core.devices import choose_device


def test_auto_takes_the_gpu_when_there_is_one():
    assert choose_device("auto", 1) == "cuda"
    assert choose_device("auto", 0) == "cpu"


def test_cpu_is_cpu_even_beside_a_gpu():
    assert choose_device("cpu", 2) == "cpu"


def test_a_missing_gpu_falls_back_to_the_cpu_with_a_warning(caplog):
    assert choose_device("cuda", 1) == "cuda"
    with caplog.at_level(logging.WARNING, logger="installation.core.devices"):
        assert choose_device("cuda", 0, "speech.device", "CTranslate2") == "cpu"
    assert [r.getMessage() for r in caplog.records] == [
        "speech.device is 'cuda' but CTranslate2 sees no CUDA GPU (a CPU-only build, or no driver); running on the CPU"]


def test_auto_without_a_gpu_is_quiet(caplog):
    with caplog.at_level(logging.WARNING, logger="installation.core.devices"):
        assert choose_device("auto", 0) == "cpu"
    assert caplog.records == []


def test_an_unknown_device_names_the_setting():
    with pytest.raises(ValueError, match=r"generator.device: expected one of auto, cpu, cuda, got 'mps'"):
        choose_device("mps", 0, "generator.device")
