"""Loading SIP / OPRA consolidated update rules (ms_aggregator/conditions.py, ms_aggregator/data/conditions.json)."""

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
    load_rules,
)
from tests.bar_oracle import OPTION_RULES, STOCK_RULES

OC, HL, V = UPDATES_OPEN_CLOSE, UPDATES_HIGH_LOW, UPDATES_VOLUME


def bundled_doc() -> dict:
    return json.loads(resources.files("ms_aggregator").joinpath("data", "conditions.json").read_bytes())


def test_bundled_file_has_the_rest_response_shape():
    doc = bundled_doc()
    assert doc["status"] == "OK"
    assert doc["count"] == len(doc["results"])
    assert doc["_source"]["stocks"] and doc["_source"]["options"]
    classes = {entry["asset_class"] for entry in doc["results"]}
    assert classes == {"stocks", "options"}
    for asset_class in classes:
        ids = [entry["id"] for entry in doc["results"] if entry["asset_class"] == asset_class]
        assert len(ids) == len(set(ids))
    for entry in doc["results"]:
        assert entry["type"] == "sale_condition"
        assert isinstance(entry["name"], str) and entry["name"]
        assert isinstance(entry["sip_mapping"], dict)
        assert entry["data_types"] == ["trade"]
        # the options rows were published with their consolidated rules only
        scopes = ("consolidated", "market_center") if entry["asset_class"] == "stocks" else ("consolidated",)
        for scope in scopes:
            rules = entry["update_rules"][scope]
            assert set(rules) == {"updates_high_low", "updates_open_close", "updates_volume"}
            assert all(isinstance(v, bool) for v in rules.values())


def test_the_options_rows_are_the_33_opra_trade_conditions():
    doc = bundled_doc()
    options = [entry for entry in doc["results"] if entry["asset_class"] == "options"]
    assert [e["id"] for e in options] == [*range(201, 211), 219, *range(227, 249)]
    assert all(len(e["sip_mapping"]["OPRA"]) == 1 for e in options)


@pytest.mark.parametrize(
    "cid, mask",
    [
        (201, 0),  # Canceled: touches nothing
        (204, 0),  # Late
        (206, 0),  # Opening Trade, Late, and Out Of Sequence
        (208, UPDATES_ALL),  # Opening Trade and Late
        (209, UPDATES_ALL),  # Automatic Execution (the usual electronic print)
        (219, UPDATES_ALL),  # Intermarket Sweep Order
        (227, UPDATES_ALL),  # Single Leg Auction Non ISO
        (232, UPDATES_ALL),  # Multi Leg auto-electronic trade: a spread leg still sets the bar
        (246, V),  # Multi Leg Floor Trade of Proprietary Products: volume only
        (247, V),  # Multilateral Compression Trade: volume only
        (248, V),  # Extended Hours Trade: volume only
    ],
)
def test_bundled_options_rules(cid, mask):
    rules = default_rules("options")
    assert cid in rules
    assert rules.rule(cid) == mask


def test_options_and_stocks_keep_their_own_numbering():
    assert default_rules("options").mask([37]) == UPDATES_ALL  # 37 is an odd lot on stocks, unknown on options
    assert default_rules("stocks").mask([201]) == UPDATES_ALL
    assert default_rules("options").name(209) == "Automatic Execution"


@pytest.mark.parametrize("asset_class, table", [("stocks", STOCK_RULES), ("options", OPTION_RULES)])
def test_bundled_rules_agree_with_the_tests_own_table(asset_class, table):
    """The oracle's hand-written table (tests/bar_oracle.py) and the data file must say the same for every
    condition the table lists: a misread rule in either shows up here."""
    rules = default_rules(asset_class)
    for cid, (oc, hl, vol) in table.items():
        assert rules.rule(cid) == (OC if oc else 0) | (HL if hl else 0) | (V if vol else 0), cid
    assert len(STOCK_RULES) + len(OPTION_RULES) >= 20


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
    assert len(default_rules("options")) == 33
    crypto = default_rules("crypto")
    assert len(crypto) == 0
    assert crypto.mask([37]) == UPDATES_ALL


def test_a_conditions_file_without_an_asset_class_falls_back_and_says_so(tmp_path):
    stocks_only = tmp_path / "stocks.json"
    stocks_only.write_text(json.dumps({"results": [entry(3, oc=False)], "status": "OK", "count": 1}))
    rules, warning = load_rules(str(stocks_only), "stocks")
    assert rules.rule(3) == HL | V and warning is None
    rules, warning = load_rules(str(stocks_only), "options")
    assert rules is default_rules("options") and "no options trade conditions" in warning
    both = {"results": [entry(3, oc=False), entry(209, asset_class="options", vol=False)]}
    path = tmp_path / "both.json"
    path.write_text(json.dumps(both))
    rules, warning = load_rules(str(path), "options")
    assert rules.rule(209) == OC | HL and warning is None
    assert load_rules(None, "crypto") == (default_rules("crypto"), None)


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
