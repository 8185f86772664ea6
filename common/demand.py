"""Demand for upstream topics: reference-counted, dropped only after a grace period (DESIGN §1).

Pure bookkeeping; the caller passes the time in and sends the subscribe/unsubscribe messages this returns.
Static topics are always wanted and never dropped.
"""

from __future__ import annotations

from typing import Iterable


class TopicDemand:
    def __init__(self, grace_ms: int, static: Iterable[str] = ()) -> None:
        self.grace_ms = grace_ms
        self._static = frozenset(static)
        self._counts: dict[str, int] = {}
        self._idle_since: dict[str, int] = {}  # topics at count 0, still subscribed upstream, by time they fell idle
        self._wanted: set[str] = set(self._static)

    @property
    def wanted(self) -> frozenset[str]:
        """Everything that should be subscribed upstream now (including idle topics still in their grace)."""
        return frozenset(self._wanted)

    def add(self, topics: Iterable[str]) -> list[str]:
        """Count one more subscriber for each topic; returns the topics that must be subscribed upstream now."""
        new = []
        for topic in topics:
            self._counts[topic] = self._counts.get(topic, 0) + 1
            self._idle_since.pop(topic, None)
            if topic not in self._wanted:
                self._wanted.add(topic)
                new.append(topic)
        return new

    def remove(self, topics: Iterable[str], now_ms: int) -> None:
        """Count one subscriber less for each topic; a topic at zero starts its grace period."""
        for topic in topics:
            n = self._counts.get(topic, 0) - 1
            if n > 0:
                self._counts[topic] = n
                continue
            self._counts.pop(topic, None)
            if topic in self._wanted and topic not in self._static:
                self._idle_since[topic] = now_ms

    def due(self, now_ms: int) -> list[str]:
        """Topics whose grace period is over: no longer wanted; the caller unsubscribes them upstream."""
        gone = [t for t, since in self._idle_since.items() if now_ms - since >= self.grace_ms]
        for topic in gone:
            del self._idle_since[topic]
            self._wanted.discard(topic)
        return sorted(gone)

    def next_due_ms(self) -> int | None:
        """When the next idle topic becomes due, or None."""
        return min(self._idle_since.values()) + self.grace_ms if self._idle_since else None
