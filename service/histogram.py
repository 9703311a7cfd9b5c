"""A lean labelled histogram for the executor's hot path.

prometheus-client's Histogram scans its buckets linearly and takes a lock per
observation; with the 50 fine buckets the executor needs (10 ms steps between 50
and 300 ms) one order's ten observations cost ~9 µs. This one bisects and keeps
plain counters: every observation happens on the event loop's thread, and a scrape
on another thread (the standalone worker's metrics server) reads values that are at
worst one observation apart. It exposes the standard histogram series
(`_bucket{le}`, `_sum`, `_count`) through a custom collector.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from math import inf

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry


class _Child:
    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: list[float]):
        self._bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value


class FastHistogram(Collector):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Iterable[float], registry: CollectorRegistry):
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        bounds = sorted(float(b) for b in buckets)
        self._bounds = bounds + ([inf] if bounds[-1] != inf else [])
        self._children: dict[tuple[str, ...], _Child] = {}
        registry.register(self)

    def labels(self, *values: str) -> _Child:
        key = tuple(str(v) for v in values)
        if len(key) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {key}")
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = _Child(self._bounds)
        return child

    def describe(self):
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self):
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in list(self._children.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(self._bounds, child.counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == inf else repr(bound), cumulative))
            family.add_metric(list(key), buckets, child.sum)
        yield family
