"""The one download policy and the cache folders (core/downloads.py), shared by the generator
and the transcribers."""

from __future__ import annotations

from pathlib import Path

from installation.core.downloads import ALLOW_DOWNLOAD_ENV, download_allowed, hf_cache_dir, jadong_cache_dir


def test_downloads_need_the_variable_set_to_one(monkeypatch):
    monkeypatch.delenv(ALLOW_DOWNLOAD_ENV, raising=False)
    assert not download_allowed()
    for value, allowed in (("1", True), (" 1\n", True), ("0", False), ("yes", False), ("", False)):
        monkeypatch.setenv(ALLOW_DOWNLOAD_ENV, value)
        assert download_allowed() is allowed, repr(value)


def test_cache_folders_follow_the_environment_when_asked(monkeypatch, tmp_path):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "JADONG_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hf_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hf_cache_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hf_cache_dir() == tmp_path / "hub"
    assert jadong_cache_dir() == Path.home() / ".cache" / "jadong"
    monkeypatch.setenv("JADONG_CACHE_DIR", f" {tmp_path / 'j'} ")
    assert jadong_cache_dir() == tmp_path / "j"
