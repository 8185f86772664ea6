"""Named counters and gauges for ``/status`` (JSON) and ``/metrics`` (Prometheus text).

Counters live in :class:`Count` cells holding a plain integer: a hot path takes its cell once with
:meth:`Metrics.counter` and bumps ``cell.n`` (one attribute add, no dict lookups or label tuples per event).
:meth:`Metrics.inc` does the lookup for the paths that are not hot. Gauges are read from callables when rendered.
This module never reads a clock or touches a socket.
"""

from __future__ import annotations

from typing import Callable

Labels = tuple[tuple[str, str], ...]


class Count:
    """One counter series: ``n`` is the running total (bump it directly on hot paths)."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class Metrics:
    def __init__(self, process: str, prefix: str = "tickfan") -> None:
        self.process = process
        self.prefix = prefix
        self._counters: dict[str, dict[Labels, Count]] = {}
        self._help: dict[str, str] = {}
        self._gauges: dict[str, list[Callable[[], dict[Labels, float] | float]]] = {}
        self._read_counters: set[str] = set()

    def describe(self, name: str, help: str) -> None:
        self._help[name] = help
        self._counters.setdefault(name, {})

    def counter(self, name: str, **labels: str) -> Count:
        """The cell of one counter series, created at 0 if new; keep it and bump ``.n`` on hot paths."""
        series = self._counters.setdefault(name, {})
        key = tuple(labels.items())
        cell = series.get(key)
        if cell is None:
            cell = series[key] = Count()
        return cell

    def inc(self, name: str, n: float = 1, **labels: str) -> None:
        self.counter(name, **labels).n += n

    def gauge(self, name: str, read: Callable[[], dict[Labels, float] | float], help: str = "") -> None:
        """A value read when rendered that may go up and down. Several readers of one name (one per upstream set,
        say) are merged: each contributes its own labelled series."""
        self._gauges.setdefault(name, []).append(read)
        if help:
            self._help[name] = help

    def counter_from(self, name: str, read: Callable[[], dict[Labels, float] | float], help: str = "") -> None:
        """A total kept elsewhere (only ever rising), read when rendered and exported as a counter."""
        self.gauge(name, read, help)
        self._read_counters.add(name)

    def value(self, name: str, **labels: str) -> float:
        key = tuple(labels.items())
        cell = self._counters.get(name, {}).get(key)
        if cell is not None:
            return cell.n
        if name not in self._gauges:
            return 0
        value = self._read(name)
        return value.get(key, 0)

    def snapshot(self) -> dict:
        """Counters and gauges as plain JSON: ``{name: value}`` or ``{name: {"k=v,...": value}}`` when labelled."""
        out: dict = {}
        for name, series in self._all():
            if list(series) in ([()], []):
                out[name] = series.get((), 0)
            else:
                out[name] = {",".join(f"{k}={v}" for k, v in key): val for key, val in series.items()}
        return out

    def prometheus(self) -> str:
        lines = []
        for name, series in self._all():
            full = f"{self.prefix}_{name}"
            if name in self._help:
                lines.append(f"# HELP {full} {self._help[name]}")
            lines.append(f"# TYPE {full} {'gauge' if name in self._gauges and name not in self._read_counters else 'counter'}")
            for key, val in series.items() or {(): 0}.items():
                labels = (("process", self.process),) + key
                label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{full}{{{label_text}}} {_number(val)}")
        return "\n".join(lines) + "\n"

    def _all(self):
        for name, series in sorted(self._counters.items()):
            yield name, {key: cell.n for key, cell in series.items()}
        for name in sorted(self._gauges):
            yield name, self._read(name)

    def _read(self, name: str) -> dict[Labels, float]:
        merged: dict[Labels, float] = {}
        for read in self._gauges[name]:
            value = read()
            merged.update(value if isinstance(value, dict) else {(): value})
        return merged


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
