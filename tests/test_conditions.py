"""Loading SIP consolidated update rules (ms_aggregator/conditions.py, ms_aggregator/data/conditions.json)."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from ms_aggregator.conditions import (
    UPDATES_ALL,
    UPDATES_HIGH_LOW,
    UPDATES_OPEN_CLOSE,
    UPDATES_VOLUME,
    ConditionRules,
    default_rules,
)

OC, HL, V = UPDATES_OPEN_CLOSE, UPDATES_HIGH_LOW, UPDATES_VOLUME


def bundled_doc() -> dict:
    return json.loads(resources.files("ms_aggregator").joinpath("data", "conditions.json").read_bytes())


def test_bundled_file_has_the_rest_response_shape():
    doc = bundled_doc()
    assert doc["status"] == "OK"
    assert doc["count"] == len(doc["results"])
    assert doc["_source"]
    ids = [entry["id"] for entry in doc["results"]]
    assert len(ids) == len(set(ids))
    for entry in doc["results"]:
        assert entry["type"] == "sale_condition"
        assert entry["asset_class"] == "stocks"
        assert isinstance(entry["name"], str) and entry["name"]
        assert isinstance(entry["sip_mapping"], dict)
        assert entry["data_types"] == ["trade"]
        for scope in ("consolidated", "market_center"):
            rules = entry["update_rules"][scope]
            assert set(rules) == {"updates_high_low", "updates_open_close", "updates_volume"}
            assert all(isinstance(v, bool) for v in rules.values())


@pytest.mark.parametrize(
    "cid, mask",
    [
        (0, UPDATES_ALL),  # Regular Trade
        (1, UPDATES_ALL),  # Acquisition
        (2, V),  # Average Price Trade
        (7, V),  # Cash Sale
        (10, HL | V),  # Derivatively Priced
        (12, V),  # Form T
        (13, V),  # Extended Trading Hours (Sold Out Of Sequence)
        (14, UPDATES_ALL),  # Intermarket Sweep
        (15, 0),  # Market Center Official Close
        (16, 0),  # Market Center Official Open
        (20, V),  # Next Day
        (21, V),  # Price Variation Trade
        (22, HL | V),  # Prior Reference Price
        (29, V),  # Seller
        (30, UPDATES_ALL),  # Sold Last
        (32, HL | V),  # Sold (Out Of Sequence)
        (33, HL | V),  # Sold (Out of Sequence) and Stopped Stock
        (37, V),  # Odd Lot Trade
        (38, OC | HL),  # Corrected Consolidated Close
        (41, UPDATES_ALL),  # Trade Thru Exempt
        (52, V),  # Contingent Trade
        (53, V),  # Qualified Contingent Trade
    ],
)
def test_bundled_consolidated_rules(cid, mask):
    rules = default_rules()
    assert cid in rules
    assert rules.rule(cid) == mask


def test_names_are_kept():
    assert default_rules().name(37) == "Odd Lot Trade"
    assert default_rules().name(12345) is None


def test_conditions_combine_by_and():
    rules = default_rules()
    assert rules.mask(None) == UPDATES_ALL
    assert rules.mask([]) == UPDATES_ALL
    assert rules.mask(()) == UPDATES_ALL
    assert rules.mask([14, 41]) == UPDATES_ALL
    assert rules.mask([14, 37]) == V
    assert rules.mask([10, 12]) == V  # high/low from 10 is vetoed by 12
    assert rules.mask([10, 38]) == HL  # 10 vetoes open/close, 38 vetoes volume
    assert rules.mask([15, 0]) == 0


def test_unknown_conditions_count_as_regular():
    rules = default_rules()
    assert 999 not in rules
    assert rules.rule(999) == UPDATES_ALL
    assert rules.mask([999]) == UPDATES_ALL
    assert rules.mask([999, 37]) == V


def test_default_rules_are_cached_and_other_asset_classes_are_empty():
    assert default_rules() is default_rules("stocks")
    options = default_rules("options")
    assert len(options) == 0
    assert options.mask([37]) == UPDATES_ALL


def entry(cid, *, hl=True, oc=True, vol=True, **extra):
    doc = {
        "id": cid,
        "type": "sale_condition",
        "name": f"c{cid}",
        "asset_class": "stocks",
        "update_rules": {
            "consolidated": {"updates_high_low": hl, "updates_open_close": oc, "updates_volume": vol},
            "market_center": {"updates_high_low": True, "updates_open_close": True, "updates_volume": True},
        },
        "data_types": ["trade"],
    }
    doc.update(extra)
    return doc


def test_from_response_uses_consolidated_rules_only():
    rules = ConditionRules.from_response({"results": [entry(1, hl=False, oc=False)], "status": "OK"})
    assert rules.rule(1) == V


def test_from_response_skips_quote_conditions_and_other_asset_classes():
    doc = {
        "results": [
            entry(30, data_types=["bbo", "nbbo"], type="quote_condition", hl=False, oc=False, vol=False),
            entry(31, asset_class="options", hl=False),
            entry(32, hl=False),
        ]
    }
    rules = ConditionRules.from_response(doc)
    assert 30 not in rules and 31 not in rules
    assert rules.rule(32) == OC | V
    assert ConditionRules.from_response(doc, asset_class="options").rule(31) == OC | V


def test_from_response_without_data_types_keeps_sale_conditions():
    plain = entry(5, vol=False)
    del plain["data_types"]
    other = entry(6, vol=False, type="sip_generated_flag")
    del other["data_types"]
    rules = ConditionRules.from_response({"results": [plain, other]})
    assert rules.rule(5) == OC | HL
    assert 6 not in rules


def test_missing_rules_mean_update_everything():
    bare = entry(9)
    del bare["update_rules"]
    partial = entry(10)
    partial["update_rules"]["consolidated"] = {"updates_volume": False}
    rules = ConditionRules.from_response({"results": [bare, partial]})
    assert rules.rule(9) == UPDATES_ALL
    assert rules.rule(10) == OC | HL


def test_from_raw_json_and_file(tmp_path):
    raw = json.dumps({"results": [entry(3, oc=False)], "status": "OK", "count": 1})
    assert ConditionRules.from_response(raw).rule(3) == HL | V
    assert ConditionRules.from_response(raw.encode()).rule(3) == HL | V
    path = tmp_path / "conditions.json"
    path.write_text(raw)
    assert ConditionRules.load(path).rule(3) == HL | V


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"status": "OK"},
        {"results": "nope"},
        {"results": [{"name": "no id"}]},
        {"results": [entry(1, hl="yes")]},
    ],
)
def test_malformed_responses_are_rejected(doc):
    with pytest.raises(ValueError):
        ConditionRules.from_response(doc)


def test_constructor_validates_masks():
    with pytest.raises(ValueError):
        ConditionRules({1: 8})
    assert ConditionRules({1: 0}).mask([1]) == 0
