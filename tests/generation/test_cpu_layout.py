"""Per-convolution layouts for the compiled CPU program: recorded from a real run, chosen by
timing, applied only while inside, and never changing a value."""

from __future__ import annotations

import json

import pytest
import torch

from installation.generation.engine import cpu_layout


class TwoConvs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.second = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x)))


@pytest.fixture
def net() -> TwoConvs:
    torch.manual_seed(0)
    return TwoConvs().eval()


def test_records_each_convolutions_input_shape(net):
    x = torch.randn(1, 3, 32, 32)
    seen = cpu_layout.record_inputs([net], lambda: net(x))
    assert seen[net.first].input_shape == (1, 3, 32, 32)
    assert seen[net.second].input_shape == (1, 8, 32, 32)
    assert seen[net.second].stride == (2, 2) and not seen[net.second].bias
    assert not net.first._forward_pre_hooks and not net.second._forward_pre_hooks


def test_channels_last_only_when_clearly_faster(net, monkeypatch):
    seen = cpu_layout.record_inputs([net], lambda: net(torch.randn(1, 3, 32, 32)))
    # Timings as a machine might report them: the first layer faster in NCHW, the second
    # clearly faster channels-last; a tie stays NCHW.
    table = {(3, torch.contiguous_format): 1.0, (3, torch.channels_last): 5.0,
             (8, torch.contiguous_format): 2.0, (8, torch.channels_last): 1.0}
    calls = []

    def timed(conv, shape, fmt, reps):
        calls.append((shape.input_shape[1], fmt))
        return table[(shape.input_shape[1], fmt)]

    monkeypatch.setattr(cpu_layout, "_time_conv", timed)
    chosen = cpu_layout.choose(seen)
    assert chosen == {net.first: torch.contiguous_format, net.second: torch.channels_last}
    assert cpu_layout.summary(chosen) == "1 of 2 convolutions channels-last"
    table[(8, torch.channels_last)] = 1.99  # within MARGIN of NCHW: not worth a conversion
    assert cpu_layout.choose(seen)[net.second] == torch.contiguous_format


def test_shared_shapes_are_timed_once(monkeypatch):
    net = torch.nn.Sequential(*[torch.nn.Conv2d(8, 8, 3, padding=1) for _ in range(4)])
    seen = cpu_layout.record_inputs([net], lambda: net(torch.randn(1, 8, 16, 16)))
    calls = []
    monkeypatch.setattr(cpu_layout, "_time_conv", lambda conv, shape, fmt, reps: calls.append(fmt) or 1.0)
    assert len(cpu_layout.choose(seen)) == 4 and len(calls) == 2


def test_real_timing_picks_a_layout_per_convolution(net):
    seen = cpu_layout.record_inputs([net], lambda: net(torch.randn(1, 3, 32, 32)))
    chosen = cpu_layout.choose(seen, reps=3)
    assert set(chosen) == {net.first, net.second}
    assert set(chosen.values()) <= {torch.contiguous_format, torch.channels_last}


def test_applied_converts_inputs_inside_only_and_keeps_values(net):
    x = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        plain = net(x)
    formats: list[bool] = []
    # A forward hook sees the arguments forward() got, after any pre-hook changed them.
    probe = net.second.register_forward_hook(
        lambda m, args, out: formats.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    try:
        with torch.inference_mode(), cpu_layout.applied({net.second: torch.channels_last}):
            inside = net(x)
        with torch.inference_mode():
            after = net(x)
    finally:
        probe.remove()
    assert formats == [True, False]
    torch.testing.assert_close(inside, plain, rtol=1e-5, atol=1e-5)
    assert torch.equal(after, plain)
    assert not net.second._forward_pre_hooks


def test_choices_are_kept_so_every_start_traces_the_same_program(net, tmp_path, monkeypatch, caplog):
    memo = tmp_path / "layouts.json"
    seen = cpu_layout.record_inputs([net], lambda: net(torch.randn(1, 3, 32, 32)))
    table = {3: (1.0, 5.0), 8: (2.0, 1.0)}  # (NCHW, channels-last) seconds by input channels
    monkeypatch.setattr(cpu_layout, "_time_conv", lambda conv, shape, fmt, reps:
                        table[shape.input_shape[1]][fmt == torch.channels_last])
    first = cpu_layout.choose(seen, memo=memo)
    assert memo.is_file() and first[net.second] == torch.channels_last

    def untimed(*args):
        raise AssertionError("timed again although the choice was kept")

    monkeypatch.setattr(cpu_layout, "_time_conv", untimed)
    assert cpu_layout.choose(seen, memo=memo) == first  # the same choice, even if timing now differed
    # Another shape is timed and added; the file keeps both.
    other = cpu_layout.record_inputs([net], lambda: net(torch.randn(1, 3, 16, 16)))
    monkeypatch.setattr(cpu_layout, "_time_conv", lambda conv, shape, fmt, reps: 1.0)
    cpu_layout.choose(other, memo=memo)
    assert len(json.loads(memo.read_text())) == 4
    # A damaged file is said and ignored: the layouts are timed again.
    memo.write_text("{not json")
    with caplog.at_level("WARNING", logger="installation.generation.engine.cpu_layout"):
        again = cpu_layout.choose(seen, memo=memo)
    assert "ignoring" in caplog.text and set(again.values()) == {torch.contiguous_format}
