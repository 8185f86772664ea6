"""Subscription topics: ``CODE.TICKER``, ``CODE.*``, bare ``*`` and ``NMs.TICKER`` millisecond bars.

A :class:`Topic` is the parsed, canonical form. Routing works on ``(code, ticker)`` keys: the code of a
millisecond bar is ``"<N>Ms"`` (canonical, no leading zeros), a per-code wildcard has ticker ``"*"`` and the bare
wildcard is ``Topic("*", "*")``, which covers every native code of the cluster and never bars.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from common.clusters import CLUSTERS, Cluster

MIN_BAR_MS = 1
MAX_BAR_MS = 60_000
MAX_TICKER_LEN = 64
WILDCARD = "*"

_BAR_CODE = re.compile(r"([0-9]{1,9})Ms")
_TICKER = re.compile(r"[^\s,]+")


class TopicError(ValueError):
    """A topic the cluster cannot serve; ``str(err)`` is the client-facing reason naming the topic."""


class Topic(NamedTuple):
    code: str
    ticker: str

    def __str__(self) -> str:
        return WILDCARD if self.is_bare else f"{self.code}.{self.ticker}"

    @property
    def is_bare(self) -> bool:
        return self.code == WILDCARD

    @property
    def interval_ms(self) -> int | None:
        """The bar interval of an ``NMs`` topic, else None."""
        return bar_interval(self.code)


BARE = Topic(WILDCARD, WILDCARD)


def bar_code(interval_ms: int) -> str:
    return f"{interval_ms}Ms"


def bar_interval(code: str) -> int | None:
    """N for a code ``"NMs"`` (any N, range not checked), else None."""
    if not code.endswith("Ms"):
        return None
    m = _BAR_CODE.fullmatch(code)
    return int(m.group(1)) if m else None


def split_params(params: str) -> list[str]:
    """The topics of a subscribe/unsubscribe ``params`` string: comma list, spaces trimmed, empty items dropped."""
    return [p for p in (item.strip() for item in params.split(",")) if p]


def parse_topic(cluster: Cluster, text: str) -> Topic:
    """Parse and validate one topic for ``cluster``; raises :class:`TopicError` with the client-facing reason.

    The ticker is upper-cased (the canonical form acks name); the code is matched as given.
    """
    if text == WILDCARD:
        return BARE
    code, dot, ticker = text.partition(".")  # tickers may contain dots (BRK.B), codes never do
    if not dot or not code:
        raise TopicError(f"unknown topic: {text}")
    if not ticker or len(ticker) > MAX_TICKER_LEN or not _TICKER.fullmatch(ticker):
        raise TopicError(f"invalid ticker: {text}")
    ticker = ticker.upper()  # Polygon tickers are upper case: t.aapl would otherwise never match
    interval = bar_interval(code)
    if interval is not None:
        if not MIN_BAR_MS <= interval <= MAX_BAR_MS:
            raise TopicError(f"interval out of range {MIN_BAR_MS}..{MAX_BAR_MS} ms: {text}")
        if not cluster.has_bars:
            raise TopicError(f"topic not available on {cluster.path}: {text}")
        return Topic(bar_code(interval), ticker)
    if code in cluster.native_codes:
        return Topic(code, ticker)
    if any(code in c.native_codes for c in CLUSTERS.values()):
        raise TopicError(f"topic not available on {cluster.path}: {text}")
    raise TopicError(f"unknown topic: {text}")


def native_expansion(cluster: Cluster, topic: Topic) -> list[Topic]:
    """What to ask an upstream for to serve ``topic``: bare ``*`` becomes every ``CODE.*``; others are themselves."""
    if topic.is_bare:
        return [Topic(code, WILDCARD) for code in cluster.native_codes]
    return [topic]
