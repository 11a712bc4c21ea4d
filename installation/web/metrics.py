"""GET /metrics: the runtime's counters in Prometheus' text format, for a gallery's existing
monitoring (Prometheus, Uptime Kuma, Grafana Agent).

A custom collector on a private registry reads the bridge's MetricsSnapshot at scrape time, so
nothing is counted twice and the process-wide default registry (which other code might fill)
is never exposed. Label values are stage and channel names only: anything that is not a short
identifier is dropped, so no visitor's words can reach a monitoring system.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import ProcessCollector
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from .bridge import MetricsSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LABEL = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass
class WebCounters:
    """What the web server itself counts (its thread only)."""

    requests: collections.Counter[str] = field(default_factory=collections.Counter)  # by status code
    auth_failures: int = 0
    lockouts: int = 0
    rate_limited: int = 0
    controls: collections.Counter[str] = field(default_factory=collections.Counter)  # "ok", "refused", "invalid"


def _labelled(family: GaugeMetricFamily | CounterMetricFamily, values: Mapping[str, float]) -> Metric:
    for key, value in sorted(values.items()):
        if _LABEL.match(str(key)):
            family.add_metric([str(key)], float(value))
    return family


class ShowCollector(Collector):
    """Turns a MetricsSnapshot, the health check and the web counters into metric families."""

    def __init__(self, metrics: Callable[[], MetricsSnapshot], health: Callable[[], tuple[bool, str]],
                 web: Callable[[], WebCounters]) -> None:
        self._metrics = metrics
        self._health = health
        self._web = web

    def collect(self) -> Iterator[Metric]:
        m = self._metrics()
        ok, _ = self._health()  # the reason is words for people; the gauge is enough for an alert
        yield GaugeMetricFamily("jadong_healthy", "1 while frames are presented (as GET /healthz answers 200)",
                                value=1.0 if ok else 0.0)
        yield GaugeMetricFamily("jadong_uptime_seconds", "Seconds since the runtime started", value=m.uptime_s)
        yield CounterMetricFamily("jadong_frames_presented", "Frames presented on screen", value=m.frames_presented)
        yield _labelled(GaugeMetricFamily("jadong_stage_fps", "Frames (or items) per second per stage",
                                          labels=["stage"]), m.rates)
        yield _labelled(CounterMetricFamily("jadong_channel_dropped", "Items dropped per channel",
                                            labels=["channel"]), m.drops)
        yield CounterMetricFamily("jadong_transcripts", "Transcripts accepted", value=m.transcripts)
        yield CounterMetricFamily("jadong_transcripts_rejected", "Transcripts refused (noise, hallucination, "
                                  "moderation)", value=m.rejections)
        yield _labelled(CounterMetricFamily("jadong_errors", "Errors per stage", labels=["stage"]), m.errors)
        yield _labelled(CounterMetricFamily("jadong_restarts", "Supervisor restarts per stage", labels=["stage"]),
                        m.restarts)
        if m.model_load_s is not None:
            yield GaugeMetricFamily("jadong_model_load_seconds", "Seconds the generator's model took to load",
                                    value=m.model_load_s)
        yield from self._web_families(self._web())

    @staticmethod
    def _web_families(web: WebCounters) -> Iterable[Metric]:
        yield _labelled(CounterMetricFamily("jadong_web_requests", "Web requests answered, by status code",
                                            labels=["code"]), web.requests)
        yield CounterMetricFamily("jadong_web_auth_failures", "Wrong passwords sent to the web page",
                                  value=web.auth_failures)
        yield CounterMetricFamily("jadong_web_lockouts", "Requests refused because their address sent too many "
                                  "wrong passwords", value=web.lockouts)
        yield CounterMetricFamily("jadong_web_rate_limited", "Requests refused by the rate limit (429)",
                                  value=web.rate_limited)
        yield _labelled(CounterMetricFamily("jadong_web_controls", "Controls sent from the page, by outcome",
                                            labels=["outcome"]), web.controls)


def make_registry(collector: ShowCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    # The process's own resident memory, CPU seconds, open files and start time
    # (process_resident_memory_bytes, ...; from /proc, Linux only): over weeks unattended, the
    # memory line is what tells staff early that something grows.
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
