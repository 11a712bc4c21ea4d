"""The show state that survives a restart (control/state_store.py): what is saved and brought
back, atomic durable writes on a real disk (a write cut off by a real file-size limit leaves the
old file), a folder that cannot be written, the soak harness's full disk, and files that are
corrupt or belong to an edited show."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from installation.control.addresses import ADDRESSES
from installation.control.host import RuntimeStatus, ScreenSettings
from installation.control.show_control import ShowControl
from installation.control.state_store import (
    _BY_ADDRESS,
    SCHEMA,
    SavedState,
    StateFileError,
    StateStore,
    parse_saved,
    restore,
    snapshot,
    to_json,
    write_atomic,
)
from installation.core.faults import FaultInjector
from installation.core.messages import Control, GenerationParams
from installation.show import parse_show

PEER = ("127.0.0.1", 9001)
SHOW = {
    "show": {"name": "tides"},
    "prompt": {"template": "{speech}, woodcut", "initial": "an empty stage", "negative": "blurry"},
    "styles": {"ink": "{speech}, ink wash", "neon": "{speech}, neon"},
    "speech": {"listen": "always"},
    "storyboard": {"autostart": True},
    "cues": [
        {"name": "dawn", "prompt": "a quiet dawn", "strength": 0.3},
        {"name": "night", "style": "neon", "blackout": True, "fade_s": 2.0, "listen": False},
        {"name": "storm", "prompt": "a storm at sea", "duration_s": 30.0},
    ],
    "osc": {"enabled": False},
}


@dataclass
class Host:
    """The show control's host, remembering only what these tests look at."""

    screen: ScreenSettings = field(default_factory=ScreenSettings)
    events: list[tuple[str, dict]] = field(default_factory=list)
    prompts: list[Any] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def publish_prompt(self, prompt) -> None:
        self.prompts.append(prompt)

    def publish_params(self, params) -> None:
        self.params.append(params)

    def set_listening(self, on: bool) -> None:
        pass

    def reply(self, sender, address: str, *args: Any) -> None:
        pass

    def send_status(self, sender) -> None:
        pass

    def request_show(self, path: Path, sender) -> None:
        pass

    def request_quit(self, source: str, sender) -> None:
        pass

    def on_event(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    def runtime_status(self) -> RuntimeStatus:
        return RuntimeStatus()


def control_for(spec: dict | None = None) -> ShowControl:
    show = parse_show(spec or SHOW, Path("tides.toml"))
    return ShowControl(show, Host(), GenerationParams(strength=0.5, steps=2, seed=7))


def send(ctl: ShowControl, address: str, *args: Any) -> None:
    ctl.handle(Control(address=address, args=tuple(args), sender=PEER))


def performed() -> ShowControl:
    """A show some way in: cue 2 fired, then a performer's words, style, settings and screen."""
    ctl = control_for()
    send(ctl, "/jadong/cue/go", "night")
    for address, value in (("/jadong/prompt", "a lighthouse"), ("/jadong/style", "ink"), ("/jadong/strength", 0.8),
                           ("/jadong/steps", 4), ("/jadong/seed", 1234), ("/jadong/seed/drift", 0.25),
                           ("/jadong/mode", "txt2img"), ("/jadong/prompt/blend", 1.5), ("/jadong/negative", "text"),
                           ("/jadong/crossfade", 2.5), ("/jadong/caption", False), ("/jadong/hud", True),
                           ("/jadong/freeze", True)):
        send(ctl, address, value)
    return ctl


def events_of(host: Host, event: str) -> list[dict]:
    return [f for e, f in host.events if e == event]


# --- what is saved and brought back ------------------------------------------------------------
def test_every_field_checked_by_an_address_has_one():
    assert all(address in ADDRESSES for address in _BY_ADDRESS.values())


def test_a_restart_brings_back_cue_prompt_style_and_settings():
    before = performed()
    saved = snapshot("tides", before)
    assert saved.cue_index == 1 and saved.cue_name == "night" and saved.blackout
    assert (saved.words, saved.style, saved.source) == ("a lighthouse", "ink", "osc")

    after = control_for()
    data = json.loads(to_json(saved))
    assert data["schema"] == SCHEMA and data["prompt"] == before.state.prompt.text
    notes = restore(after, parse_saved(data, snapshot("tides", after)), now=50.0)
    assert notes == []
    assert snapshot("tides", after) == saved
    assert after.state.prompt.text == before.state.prompt.text == "a lighthouse, ink wash"
    assert after.state.prompt.negative == "text" and after.state.params.strength == 0.8
    assert after.host.screen.blackout and after.host.screen.hud_visible and not after.host.screen.caption_visible
    assert not after.state.frozen  # the frozen picture died with the process
    assert after.state.listening is False  # the night cue closed the ear
    # The cue is current again without being fired (no cue event), and autostart stays put.
    assert events_of(after.host, "cue") == []
    after.tick(51.0)
    assert after.state.cue_index == 1 and events_of(after.host, "cue") == []


def test_a_restored_cue_runs_its_clock_afresh():
    before = control_for()
    send(before, "/jadong/cue/go", "storm")
    after = control_for()
    restore(after, snapshot("tides", before), now=100.0)
    assert after.time_left(110.0) == 20.0


def test_blackout_is_left_alone_on_a_show_switch():
    after = control_for()
    restore(after, snapshot("tides", performed()), now=1.0, blackout=False)
    assert not after.state.blackout and not after.host.screen.blackout


def test_a_show_that_keeps_no_visitor_words_saves_none():
    spec = {**SHOW, "privacy": {"keep_words": False}}
    ctl = control_for(spec)
    ctl.from_speech("my secret wish", caption="my secret wish")
    saved = snapshot("tides", ctl)
    assert "secret" not in to_json(saved).decode() and saved.source == "show"
    send(ctl, "/jadong/cue/go", "dawn")  # the artist's words are kept
    assert snapshot("tides", ctl).words == "a quiet dawn"


# --- the file: an edited show, corrupt files ------------------------------------------------------
def saved_file(tmp_path: Path, **changes: Any) -> tuple[StateStore, Host, Path]:
    """A store with tides.json holding performed()'s state, with `changes` to its JSON."""
    host = Host()
    store = StateStore(tmp_path, on_event=host.on_event)
    data = json.loads(to_json(snapshot("tides", performed())))
    data.update(changes)
    path = store.path_for("tides")
    path.write_text(json.dumps(data), encoding="utf-8")
    return store, host, path


def test_a_removed_cue_resets_only_the_cue(tmp_path):
    store, host, _ = saved_file(tmp_path, cue_index=4, cue_name="gone")
    ctl = control_for()
    saved = store.load(snapshot("tides", ctl))
    assert saved is not None and saved.cue_name == "gone"
    notes = restore(ctl, saved, now=1.0)
    assert notes and "'gone'" in notes[0] and "no longer in the show" in notes[0]
    assert ctl.state.cue_index == -1 and ctl.state.params.strength == 0.8 and ctl.state.style == "ink"


def test_a_moved_cue_is_found_by_its_name(tmp_path):
    store, _, _ = saved_file(tmp_path)
    spec = {**SHOW, "cues": [SHOW["cues"][2], SHOW["cues"][0], SHOW["cues"][1]]}  # "night" now third
    ctl = control_for(spec)
    restore(ctl, store.load(snapshot("tides", ctl)), now=1.0)
    assert (ctl.state.cue_index, ctl.cue_name()) == (2, "night")


def test_a_removed_style_falls_back_to_the_template(tmp_path):
    store, _, _ = saved_file(tmp_path, style="charcoal")
    ctl = control_for()
    notes = restore(ctl, store.load(snapshot("tides", ctl)), now=1.0)
    assert any("'charcoal'" in n for n in notes)
    assert ctl.state.style == "" and ctl.state.prompt.text == "a lighthouse, woodcut"  # the show's [prompt] template


def test_missing_fields_keep_the_show_own(tmp_path):
    store, _, path = saved_file(tmp_path)
    path.write_text(json.dumps({"schema": SCHEMA, "show": "tides", "strength": 0.9}), encoding="utf-8")
    ctl = control_for()
    saved = store.load(snapshot("tides", ctl))
    assert saved == replace(snapshot("tides", ctl), strength=0.9)


@pytest.mark.parametrize(("content", "reason"), [
    (b'{"schema": 1, "show": "tides", "strength": ', "not JSON"),
    (b"\xff\xfe\x00garbage", "not JSON"),
    (b"[1, 2, 3]", "expected a JSON object"),
    (b'{"schema": 2, "show": "tides"}', "schema: expected 1"),
    (b'{"schema": 1, "show": "tides", "strength": "high"}', "strength: expected a number"),
    (b'{"schema": 1, "show": "tides", "strength": 5.0}', "strength: expected a value from 0 to 1"),
    (b'{"schema": 1, "show": "tides", "mode": "sideways"}', "mode: expected one of img2img"),
    (b'{"schema": 1, "show": "tides", "cue_index": true}', "cue_index: expected a whole number"),
    (b'{"schema": 1, "show": "tides", "blackout": "yes"}', "blackout: expected true or false"),
    (b'{"schema": 1, "show": "tides", "mask": "sideways"}', "mask: expected one of"),
])
def test_a_corrupt_file_is_set_aside_with_an_event(tmp_path, content, reason, caplog):
    host = Host()
    store = StateStore(tmp_path, on_event=host.on_event)
    path = store.path_for("tides")
    path.write_bytes(content)
    assert store.load(snapshot("tides", control_for())) is None
    assert not path.exists()
    aside = list(tmp_path.glob("tides.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == content  # kept for whoever wants to look
    errors = events_of(host, "error")
    assert len(errors) == 1 and errors[0]["stage"] == "state"
    assert reason in errors[0]["reason"] and aside[0].name in errors[0]["reason"], errors[0]["reason"]
    assert reason in caplog.text
    # Set aside again later: never over the first one.
    path.write_bytes(content)
    store.load(snapshot("tides", control_for()))
    assert len(list(tmp_path.glob("tides.json.corrupt-*"))) == 2


def test_another_show_in_one_state_file_is_left_alone(tmp_path):
    host = Host()
    file = tmp_path / "one.json"
    StateStore(file=file).close()
    file.write_bytes(to_json(SavedState(show="other", strength=0.1)))
    store = StateStore(file=file, on_event=host.on_event)
    assert store.load(snapshot("tides", control_for())) is None
    assert file.exists() and events_of(host, "error") == []


def test_show_names_become_safe_file_names(tmp_path):
    store = StateStore(tmp_path)
    assert store.path_for("gallery") == tmp_path / "gallery.json"
    assert store.path_for("../../etc/passwd").parent == tmp_path
    assert store.path_for("..").name == "show.json"


# --- writing -------------------------------------------------------------------------------------
def test_offers_are_coalesced_and_the_last_one_is_written(tmp_path):
    store = StateStore(tmp_path, min_interval_s=0.5)
    base = snapshot("tides", control_for())
    for i in range(200):  # a fader streaming: far more changes than writes
        store.offer(replace(base, strength=i / 200))
    assert store.close()
    assert store.writes <= 3
    data = json.loads((tmp_path / "tides.json").read_text(encoding="utf-8"))
    assert data["strength"] == 199 / 200 and data["schema"] == SCHEMA
    assert not list(tmp_path.glob(".*.tmp"))  # no temp file left behind


def test_a_switch_back_gets_this_run_newest_state_before_it_is_written(tmp_path):
    store = StateStore(tmp_path, min_interval_s=60.0)
    base = snapshot("tides", control_for())
    store.offer(replace(base, strength=0.1))
    store.offer(replace(base, strength=0.2))  # waits for the interval
    assert store.load(base) == replace(base, strength=0.2)
    store.close()


def test_a_write_cut_off_midway_leaves_the_old_file(tmp_path):
    """A real failure in the middle of the temp file's write: the process may write at most 600
    bytes per file (RLIMIT_FSIZE), as a disk filling up would stop it."""
    path = tmp_path / "tides.json"
    old = to_json(SavedState(show="tides", strength=0.25))
    path.write_bytes(old)
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        from installation.control.state_store import write_atomic
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))
        try:
            write_atomic(Path({str(path)!r}), b"x" * 5000)
        except OSError as exc:
            print("failed", exc.errno)
            sys.exit(0)
        print("written")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.startswith("failed"), done.stdout + done.stderr
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["tides.json"]  # the partial temp file is gone


def test_a_failed_rename_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "tides.json"
    write_atomic(path, b"old")

    def refuse(src, dst):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("installation.control.state_store.os.replace", refuse)
    with pytest.raises(OSError):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def wait_until(found, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found():
            return True
        time.sleep(0.02)
    return False


def test_an_unwritable_folder_is_one_event_and_retried_until_it_works(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the folder should be")  # every mkdir and open fails, as on a read-only disk
    host = Host()
    store = StateStore(blocker / "shows", on_event=host.on_event, min_interval_s=0.01, retry_s=0.05)
    base = snapshot("tides", control_for())
    store.offer(replace(base, strength=0.6))
    assert wait_until(lambda: events_of(host, "error"))
    time.sleep(0.3)  # several retries meanwhile
    errors = events_of(host, "error")
    assert len(errors) == 1 and errors[0]["stage"] == "state" and "retrying" in errors[0]["reason"]
    store.offer(replace(base, strength=0.7))  # newer changes wait with the failed one
    blocker.unlink()  # the disk is writable again
    assert wait_until(lambda: events_of(host, "state"))
    assert events_of(host, "state")[0]["action"] == "saved again"
    assert store.close()
    assert json.loads((blocker / "shows" / "tides.json").read_text(encoding="utf-8"))["strength"] == 0.7


def test_the_soak_harness_full_disk_fails_state_writes_too(tmp_path):
    faults = FaultInjector(enabled=True)
    host = Host()
    store = StateStore(tmp_path, on_event=host.on_event, min_interval_s=0.01, retry_s=0.1, faults=faults)
    faults.arm("disk_full")
    store.offer(snapshot("tides", control_for()))
    assert wait_until(lambda: events_of(host, "error"))
    assert "No space left on device" in events_of(host, "error")[0]["reason"]
    assert wait_until(lambda: (tmp_path / "tides.json").exists())  # once the injected second is over
    assert store.close()


# --- each stream's own settings ([[streams]]) ---------------------------------------------------
STREAMS_SHOW = {**SHOW, "streams": [{"name": "left", "crop": "left"}, {"name": "right", "crop": "right"}],
                "outputs": [{"stream": 1}, {"stream": 2, "mode": "headless"}]}


def streams_for(ctl: ShowControl):
    from installation.control.streams import StreamControl
    from installation.core.channels import LatestSlot
    from installation.core.streams import StreamSlots

    first = StreamSlots(1, "", LatestSlot("prompt", ctl.state.prompt), LatestSlot("params", ctl.state.params),
                        LatestSlot("frames"))
    return StreamControl(ctl.show, ctl, first)


def test_each_streams_own_settings_are_saved_and_come_back(tmp_path):
    ctl = control_for(STREAMS_SHOW)
    streams = streams_for(ctl)
    for address, value in (("/jadong/stream/2/strength", 0.2), ("/jadong/stream/2/seed", 99),
                           ("/jadong/stream/2/style", "neon"), ("/jadong/stream/1/prompt", "a red kite"),
                           ("/jadong/stream/1/words", False)):
        send(ctl, address, value)
    saved = snapshot("tides", ctl, streams)
    back = parse_saved(json.loads(to_json(saved)), snapshot("tides", control_for(STREAMS_SHOW)))
    assert back.streams == saved.streams

    ctl2 = control_for(STREAMS_SHOW)
    streams2 = streams_for(ctl2)
    notes = restore(ctl2, back, time.monotonic(), streams=streams2)
    assert notes == []
    second = streams2.stream(2)
    assert (second.strength, second.seed, second.style) == (0.2, 99, "neon")
    assert second.slots.params.get().strength == 0.2 and second.slots.params.get().seed == 99
    first = streams2.stream(1)
    assert first.words is False and first.slots.prompt.get().text == "a red kite"
    assert snapshot("tides", ctl2, streams2).streams == saved.streams


def test_a_saved_stream_the_edited_show_lost_is_left_out_with_a_note():
    ctl = control_for(STREAMS_SHOW)
    streams = streams_for(ctl)
    send(ctl, "/jadong/stream/2/strength", 0.2)
    saved = snapshot("tides", ctl, streams)
    one = control_for()  # the show edited down to one stream
    notes = restore(one, saved, time.monotonic(), streams=streams_for(one))
    assert notes == ["stream 2 is no longer in the show: its settings are left out"]


@pytest.mark.parametrize("streams, fragment", [
    ("left", "streams: expected a list"),
    ([{"index": 2}], "streams: [0].index: expected 1"),
    ([{"index": 1, "strength": 3}], "streams: [0].strength: expected null or a number from 0 to 1"),
    ([{"index": 1, "seed": -1}], "streams: [0].seed"),
    ([{"index": 1, "words": "yes"}], "streams: [0].words: expected true or false"),
])
def test_a_bad_streams_field_is_named(streams, fragment):
    data = json.loads(to_json(snapshot("tides", control_for())))
    data["streams"] = streams
    with pytest.raises(StateFileError) as info:
        parse_saved(data, snapshot("tides", control_for()))
    assert fragment in str(info.value)
