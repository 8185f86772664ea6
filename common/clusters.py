"""The Polygon clusters tickfan serves and what each one carries (DESIGN §2, "Topics").

A cluster is selected by the websocket path (``/stocks`` …; ``/`` means ``/stocks``). Each has a fixed set of
native event codes, and the clusters with trades also carry ``NMs`` millisecond bars built from those trades.
``PY`` (Pyth Hermes prices, ticker field ``sym``) is native on the clusters of the asset classes Pyth publishes.
"""

from __future__ import annotations

from dataclasses import dataclass

# Pyth Hermes prices (DESIGN §2 "Pyth prices"): a tickfan event, not a Polygon one.
PYTH_CODE = "PY"


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str
    native_codes: tuple[str, ...]
    trade_code: str | None  # the event code whose trades feed NMs bars; None: no bars on this cluster

    @property
    def path(self) -> str:
        return "/" + self.name

    @property
    def has_bars(self) -> bool:
        return self.trade_code is not None


CLUSTERS: dict[str, Cluster] = {
    c.name: c
    for c in (
        Cluster("stocks", ("T", "Q", "A", "AM", "LULD", "NOI", "FMV", "LV", PYTH_CODE), "T"),
        Cluster("options", ("T", "Q", "A", "AM", "FMV"), "T"),
        Cluster("crypto", ("XT", "XQ", "XA", "XAS", "XL2", "FMV", PYTH_CODE), "XT"),
        Cluster("forex", ("C", "CA", "CAS", "FMV", PYTH_CODE), None),
        Cluster("indices", ("V", "A", "AM", PYTH_CODE), None),
    )
}

DEFAULT_CLUSTER = CLUSTERS["stocks"]

# Which field of an event holds its ticker, by event code. Codes not listed use "sym".
TICKER_FIELD: dict[str, str] = {
    "LULD": "T",
    "NOI": "T",
    "V": "T",
    "C": "p",
    "CA": "pair",
    "CAS": "pair",
    "XT": "pair",
    "XQ": "pair",
    "XA": "pair",
    "XAS": "pair",
    "XL2": "pair",
}

# Polygon stamps crypto and forex FMV events with the reference-data ticker (the spec's examples: "X:BTC-USD",
# "C:EURUSD") while subscriptions name the pair like every other code of the cluster ("FMV.BTC-USD", "FMV.EUR/USD").
FAIR_VALUE = "FMV"


def fair_value_ticker(sym: str) -> str:
    """The subscription ticker of an FMV event's ``sym``: ``X:BTC-USD`` → ``BTC-USD``, ``C:EURUSD`` → ``EUR/USD``;
    stocks and options tickers (``AAPL``, ``O:SPY…``) are their own."""
    if sym.startswith("X:"):
        return sym[2:]
    if sym.startswith("C:"):
        pair = sym[2:]
        return f"{pair[:3]}/{pair[3:]}" if len(pair) == 6 and "/" not in pair else pair
    return sym


# The event code of a millisecond bar on the wire; its routing code is "<interval>Ms".
BAR_EVENT = "MB"


def cluster_for_path(path: str) -> Cluster | None:
    """The cluster a websocket request path selects, or None for an unknown path. Query strings are ignored."""
    name = path.split("?", 1)[0].strip("/")
    if name == "":
        return DEFAULT_CLUSTER
    return CLUSTERS.get(name)
