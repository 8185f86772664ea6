"""SIP consolidated update rules of trade conditions (DESIGN §2, "Millisecond bars").

Each trade carries a list of condition ids (Polygon's numbering). Whether the trade may update a bar's open/close,
high/low and volume follows the *consolidated* processing guidelines of the CTA and UTP plans, which Polygon
publishes at ``GET /v3/reference/conditions`` under ``update_rules.consolidated``; options (OPRA) trade
conditions have rules of the same shape. The rules of both asset classes ship in
``ms_aggregator/data/conditions.json`` (that response's shape); a live response holding both can replace the
file as is (:func:`load_rules` falls back to the bundled rules of a class the file lacks, and says so).

A trade's rules combine by AND: it updates a field only if *every* one of its conditions does. A trade without
conditions, and a condition id the rules do not know, count as regular (update everything).

Rules are reduced to a bit mask per trade: :data:`UPDATES_OPEN_CLOSE`, :data:`UPDATES_HIGH_LOW` and
:data:`UPDATES_VOLUME`; :data:`UPDATES_ALL` is a regular trade.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "UPDATES_OPEN_CLOSE",
    "UPDATES_HIGH_LOW",
    "UPDATES_VOLUME",
    "UPDATES_ALL",
    "ConditionRules",
    "default_rules",
    "load_rules",
]

UPDATES_OPEN_CLOSE = 1
UPDATES_HIGH_LOW = 2
UPDATES_VOLUME = 4
UPDATES_ALL = UPDATES_OPEN_CLOSE | UPDATES_HIGH_LOW | UPDATES_VOLUME

_FLAG_OF_FIELD = {
    "updates_open_close": UPDATES_OPEN_CLOSE,
    "updates_high_low": UPDATES_HIGH_LOW,
    "updates_volume": UPDATES_VOLUME,
}


class ConditionRules:
    """Consolidated update rules of one asset class's trade conditions, as bit masks by condition id.

    ``masks`` maps a condition id to its mask; ``names`` optionally maps ids to Polygon's names. Immutable once built.
    """

    __slots__ = ("asset_class", "_masks", "_names")

    def __init__(
        self,
        masks: Mapping[int, int],
        names: Mapping[int, str] | None = None,
        asset_class: str = "stocks",
    ) -> None:
        for cid, mask in masks.items():
            if not isinstance(cid, int) or not isinstance(mask, int) or not 0 <= mask <= UPDATES_ALL:
                raise ValueError(f"invalid rule {cid!r}: {mask!r}")
        self.asset_class = asset_class
        self._masks: dict[int, int] = dict(masks)
        self._names: dict[int, str] = dict(names or {})

    @classmethod
    def from_response(cls, doc: Mapping[str, Any] | bytes | str, asset_class: str = "stocks") -> ConditionRules:
        """Build from a ``/v3/reference/conditions`` response (parsed or raw JSON).

        Only trade conditions of ``asset_class`` are kept: entries whose ``data_types`` include ``"trade"`` (or,
        without ``data_types``, whose ``type`` is ``"sale_condition"``). Quote conditions reuse the same ids, so
        mixing them in would be wrong. An entry without ``update_rules.consolidated`` updates everything; a missing
        flag inside it counts as true. Raises :class:`ValueError` if the document is not of that shape.
        """
        if isinstance(doc, (bytes, str)):
            doc = json.loads(doc)
        if not isinstance(doc, Mapping) or not isinstance(doc.get("results"), list):
            raise ValueError("not a /v3/reference/conditions response: no 'results' list")
        masks: dict[int, int] = {}
        names: dict[int, str] = {}
        for entry in doc["results"]:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), int):
                raise ValueError(f"condition entry without an integer id: {entry!r}")
            if entry.get("asset_class", asset_class) != asset_class:
                continue
            data_types = entry.get("data_types")
            if data_types is not None:
                if "trade" not in data_types:
                    continue
            elif entry.get("type") != "sale_condition":
                continue
            rules = entry.get("update_rules") or {}
            consolidated = rules.get("consolidated") if isinstance(rules, Mapping) else None
            mask = UPDATES_ALL
            if isinstance(consolidated, Mapping):
                for field, flag in _FLAG_OF_FIELD.items():
                    value = consolidated.get(field, True)
                    if not isinstance(value, bool):
                        raise ValueError(f"condition {entry['id']}: {field} is not a boolean")
                    if not value:
                        mask &= ~flag
            masks[entry["id"]] = mask
            if isinstance(entry.get("name"), str):
                names[entry["id"]] = entry["name"]
        return cls(masks, names, asset_class)

    @classmethod
    def load(cls, path: str | Path | None = None, asset_class: str = "stocks") -> ConditionRules:
        """Read a conditions response from ``path``; None reads the bundled ``ms_aggregator/data/conditions.json``."""
        if path is None:
            data = resources.files("ms_aggregator").joinpath("data", "conditions.json").read_bytes()
        else:
            data = Path(path).read_bytes()
        return cls.from_response(data, asset_class)

    def rule(self, condition: int) -> int:
        """The mask of one condition id; :data:`UPDATES_ALL` for an id these rules do not know."""
        return self._masks.get(condition, UPDATES_ALL)

    def mask(self, conditions: Iterable[int] | None) -> int:
        """The mask of a trade with these conditions: the AND of each one's mask; no conditions → all."""
        mask = UPDATES_ALL
        if conditions:
            get = self._masks.get
            for c in conditions:
                mask &= get(c, UPDATES_ALL)
        return mask

    def name(self, condition: int) -> str | None:
        return self._names.get(condition)

    @property
    def ids(self) -> frozenset[int]:
        return frozenset(self._masks)

    def __contains__(self, condition: object) -> bool:
        return condition in self._masks

    def __len__(self) -> int:
        return len(self._masks)

    def __repr__(self) -> str:
        return f"<ConditionRules {self.asset_class}: {len(self._masks)} conditions>"


def load_rules(path: str | Path | None, asset_class: str) -> tuple[ConditionRules, str | None]:
    """The rules of ``asset_class`` from ``path`` (None or empty: the bundled file), and a warning when the file
    holds no trade conditions of that class, whose bundled rules are used instead (an unnoticed stocks-only
    download would otherwise make every options trade count as regular)."""
    if not path:
        return default_rules(asset_class), None
    rules = ConditionRules.load(path, asset_class)
    if len(rules) == 0 and len(default_rules(asset_class)):
        return default_rules(asset_class), f"{path} holds no {asset_class} trade conditions: using the bundled ones"
    return rules, None


def default_rules(asset_class: str = "stocks") -> ConditionRules:
    """The bundled rules for ``asset_class`` (loaded once). Classes the file lacks get empty rules: all regular."""
    return _bundled(asset_class)


@cache
def _bundled(asset_class: str) -> ConditionRules:
    return ConditionRules.load(asset_class=asset_class)
