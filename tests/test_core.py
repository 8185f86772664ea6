"""Pure-core tests: topics, the topic index, frames, protocol sessions, demand, backoff, settings."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common import protocol
from common.backoff import Backoff
from common.clusters import CLUSTERS, cluster_for_path
from common.demand import TopicDemand
from common.frames import FrameError, event_from_object, pack_frames, split_frame
from common.session import Session, TopicPolicy
from common.settings import HubSettings, SettingsError, load_settings
from common.topic_index import TopicIndex
from common.topics import (
    BARE,
    Topic,
    TopicError,
    native_expansion,
    parse_topic,
    split_params,
)

STOCKS, CRYPTO, FOREX = CLUSTERS["stocks"], CLUSTERS["crypto"], CLUSTERS["forex"]


# -- topics -----------------------------------------------------------------------------------------------------


def test_parse_native_wildcard_bare_and_bars():
    assert parse_topic(STOCKS, "T.AAPL") == Topic("T", "AAPL")
    assert parse_topic(STOCKS, "T.BRK.B") == Topic("T", "BRK.B")
    assert parse_topic(STOCKS, "Q.*") == Topic("Q", "*")
    assert parse_topic(STOCKS, "*") == BARE
    assert parse_topic(STOCKS, "100Ms.AAPL") == Topic("100Ms", "AAPL")
    assert parse_topic(STOCKS, "0100Ms.AAPL") == Topic("100Ms", "AAPL")
    assert parse_topic(CRYPTO, "1Ms.*").interval_ms == 1
    assert parse_topic(CRYPTO, "60000Ms.BTC-USD").interval_ms == 60000
    assert parse_topic(FOREX, "C.EUR/USD") == Topic("C", "EUR/USD")


@pytest.mark.parametrize(
    "cluster, text, reason",
    [
        (STOCKS, "0Ms.AAPL", "interval out of range 1..60000 ms: 0Ms.AAPL"),
        (STOCKS, "60001Ms.AAPL", "interval out of range 1..60000 ms: 60001Ms.AAPL"),
        (STOCKS, "XT.BTC-USD", "topic not available on /stocks: XT.BTC-USD"),
        (CRYPTO, "T.AAPL", "topic not available on /crypto: T.AAPL"),
        (FOREX, "100Ms.EUR/USD", "topic not available on /forex: 100Ms.EUR/USD"),
        (STOCKS, "FOO.AAPL", "unknown topic: FOO.AAPL"),
        (STOCKS, "AAPL", "unknown topic: AAPL"),
        (STOCKS, "T.", "invalid ticker: T."),
        (STOCKS, "T.A B", "invalid ticker: T.A B"),
    ],
)
def test_parse_errors_name_topic_and_reason(cluster, text, reason):
    with pytest.raises(TopicError) as err:
        parse_topic(cluster, text)
    assert str(err.value) == reason


def test_split_params_trims_and_drops_empty():
    assert split_params(" T.AAPL, ,Q.MSFT ,,") == ["T.AAPL", "Q.MSFT"]


def test_bare_expands_to_every_native_code_not_bars():
    assert [str(t) for t in native_expansion(CRYPTO, BARE)] == [f"{c}.*" for c in CRYPTO.native_codes]


def test_cluster_paths():
    assert cluster_for_path("/") is STOCKS
    assert cluster_for_path("/crypto?x=1") is CRYPTO
    assert cluster_for_path("/nope") is None


# -- topic index ------------------------------------------------------------------------------------------------


def test_index_at_most_once_and_bare_never_bars():
    index: TopicIndex[str] = TopicIndex()
    index.add("a", Topic("T", "*"))
    index.add("a", Topic("T", "AAPL"))
    index.add("b", BARE)
    index.add("c", Topic("100Ms", "AAPL"))
    assert index.lookup("T", "AAPL") == ("b", "a")
    assert index.lookup("100Ms", "AAPL") == ("c",)
    index.remove("a", Topic("T", "*"))
    assert index.lookup("T", "MSFT") == ("b",)
    assert index.lookup("T", "AAPL") == ("b", "a")
    index.remove("b", BARE)
    index.remove("a", Topic("T", "AAPL"))
    index.remove("c", Topic("100Ms", "AAPL"))
    assert not index


topics_st = st.one_of(
    st.just(BARE),
    st.builds(Topic, st.sampled_from(["T", "Q", "100Ms"]), st.sampled_from(["*", "AAPL", "MSFT"])),
)


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3), topics_st), max_size=40))
def test_index_matches_brute_force(ops):
    index: TopicIndex[int] = TopicIndex()
    subs: dict[int, set[Topic]] = {}
    for add, who, topic in ops:
        if add:
            index.add(who, topic)
            subs.setdefault(who, set()).add(topic)
        else:
            index.remove(who, topic)
            subs.get(who, set()).discard(topic)
        for code in ("T", "Q", "100Ms"):
            for ticker in ("AAPL", "MSFT", "IBM"):
                want = {
                    w for w, ts in subs.items()
                    if Topic(code, ticker) in ts or Topic(code, "*") in ts or (BARE in ts and code != "100Ms")
                }
                got = index.lookup(code, ticker)
                assert len(got) == len(set(got)) and set(got) == want


# -- frames -----------------------------------------------------------------------------------------------------


def test_split_frame_routes_by_cluster_ticker_field():
    frame = (
        b'[{"ev":"T","sym":"AAPL","p":1.50},{"ev":"C","p":"USD/CNH","a":6.8},{"ev":"XT","pair":"BTC-USD","p":3.0},'
        b'{"ev":"LULD","T":"MSFT"},{"ev":"V","T":"I:SPX","val":1},{"ev":"MB","sym":"X","interval":250},'
        b'{"ev":"CA","pair":"USD/EUR"},{"ev":"FMV","sym":"X:BTC-USD"},{"ev":"FMV","sym":"C:EURUSD"},'
        b'{"ev":"FMV","sym":"AAPL"},{"ev":"FMV","sym":"O:TSLA210903C00700000"}]'
    )
    keys = [(e.code, e.ticker) for e in split_frame(frame)]
    # FMV on crypto and forex carries the reference-data ticker (the spec's examples); it routes by the pair that
    # FMV.BTC-USD / FMV.EUR/USD subscriptions name
    assert keys == [("T", "AAPL"), ("C", "USD/CNH"), ("XT", "BTC-USD"), ("LULD", "MSFT"), ("V", "I:SPX"),
                    ("250Ms", "X"), ("CA", "USD/EUR"), ("FMV", "BTC-USD"), ("FMV", "EUR/USD"), ("FMV", "AAPL"),
                    ("FMV", "O:TSLA210903C00700000")]


@pytest.mark.parametrize("bad", [b"", b"{", b'{"ev":"T"}', b"[1,2]", b'[{"sym":"AAPL"}]', b"[{]"])
def test_split_frame_rejects_non_frames(bad):
    with pytest.raises(FrameError):
        split_frame(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
event_st = st.builds(
    lambda ev, sym, extra, spaces: (
        "{" + (" " if spaces else "") + f'"ev":{json.dumps(ev)},"sym":{json.dumps(sym)}'
        + "".join(f",{json.dumps(k)}:{json.dumps(v)}" for k, v in extra.items() if k not in ("ev", "sym", "interval"))
        + "}"
    ).encode(),
    st.sampled_from(["T", "Q", "A", "AM"]),
    st.text(min_size=1, max_size=6),
    st.dictionaries(st.sampled_from(["p", "s", "x", "c", "t", "z", "1.50"]), json_values, max_size=5),
    st.booleans(),
)


@given(st.lists(event_st, max_size=30), st.integers(64, 4096))
def test_split_then_pack_is_byte_identical_and_ordered(objects, limit):
    frame = b"[" + b",".join(objects) + b"]"
    events = split_frame(frame)
    assert [bytes(e.raw) for e in events] == objects
    frames = pack_frames([e.raw for e in events], limit)
    again = [bytes(e.raw) for f in frames for e in split_frame(f)]
    assert again == objects
    for f in frames:
        assert len(f) <= limit or len(split_frame(f)) == 1


def test_numbers_are_not_reformatted():
    raw = b'{"ev":"T","sym":"A","p":114.1250,"s":1e2,"t":1536036818784}'
    (event,) = split_frame(b"[ " + raw + b" ]")
    assert bytes(event.raw) == raw
    assert event_from_object(raw)[:2] == ("T", "A")


# -- protocol session -------------------------------------------------------------------------------------------


def _session(**kw) -> Session:
    return Session(STOCKS, lambda key: key == "good", **kw)


def _statuses(objects):
    return [json.loads(o) for o in objects]


def test_exact_status_texts():
    assert json.loads(protocol.CONNECTED) == {"ev": "status", "status": "connected", "message": "Connected Successfully"}
    assert json.loads(protocol.AUTH_TIMEOUT)["message"] == "No authentication request received."
    assert protocol.CONNECTED.startswith(b'{"ev":"status","status":"connected"')


def test_session_auth_subscribe_unsubscribe():
    s = _session()
    reply = s.receive(b'{"action":"subscribe","params":"T.AAPL"}')
    assert _statuses(reply.out) == [{"ev": "status", "status": "auth_required", "message": "authentication required"}]
    reply = s.receive(b'{"action":"auth","params":"good"}')
    assert _statuses(reply.out) == [{"ev": "status", "status": "auth_success", "message": "authenticated"}]
    reply = s.receive('{"action":"subscribe","params":"T.AAPL, Q.AAPL,T.AAPL,XT.X"}')
    assert [m["message"] for m in _statuses(reply.out)] == [
        "subscribed to: T.AAPL", "subscribed to: Q.AAPL", "subscribed to: T.AAPL", "topic not available on /stocks: XT.X"
    ]
    assert reply.added == [Topic("T", "AAPL"), Topic("Q", "AAPL")]
    reply = s.receive(b'{"action":"unsubscribe","params":"T.AAPL,T.NEVER"}')
    assert [m["message"] for m in _statuses(reply.out)] == ["unsubscribed to: T.AAPL", "unsubscribed to: T.NEVER"]
    assert reply.removed == [Topic("T", "AAPL")]


def test_tickers_are_upper_cased_and_acked_in_canonical_form():
    s = _session()
    s.receive(b'{"action":"auth","params":"good"}')
    reply = s.receive(b'{"action":"subscribe","params":"T.aapl,100Ms.msft,XT.btc-usd"}')
    assert [o["message"] for o in _statuses(reply.out)] == [
        "subscribed to: T.AAPL", "subscribed to: 100Ms.MSFT", "topic not available on /stocks: XT.btc-usd"]
    assert reply.added == [Topic("T", "AAPL"), Topic("100Ms", "MSFT")]
    reply = s.receive(b'{"action":"unsubscribe","params":"T.Aapl"}')
    assert reply.removed == [Topic("T", "AAPL")]


def test_session_auth_failed_closes_1008():
    reply = _session().receive(b'{"action":"auth","params":"bad"}')
    assert _statuses(reply.out)[0]["status"] == "auth_failed" and reply.close[0] == 1008


def test_session_max_connections():
    reply = _session(admit=lambda: False).receive(b'{"action":"auth","params":"good"}')
    assert _statuses(reply.out)[0]["status"] == "max_connections" and reply.close[0] == 1008


@pytest.mark.parametrize(
    "message, text",
    [
        (b"{nope", "malformed JSON"),
        (b'{"action":"dance","params":""}', "unknown action: 'dance'"),
        (b'["auth"]', "invalid message"),
        (b'{"params":"x"}', "invalid message"),
        (b'{"action":"subscribe"}', "subscribe: no topics in params"),
        (b'{"action":"subscribe","params":" , "}', "subscribe: no topics in params"),
        (b'{"action":"unsubscribe","params":""}', "unsubscribe: no topics in params"),
    ],
)
def test_session_bad_messages_get_error_and_stay_up(message, text):
    s = _session()
    s.receive(b'{"action":"auth","params":"good"}')
    reply = s.receive(message)
    (status,) = _statuses(reply.out)
    assert status["status"] == "error" and text in status["message"] and reply.close is None


def test_policy_limits_codes_and_bars():
    s = _session(policy=TopicPolicy(codes=frozenset({"A", "AM"}), bars_unavailable=None))
    s.receive(b'{"action":"auth","params":"good"}')
    out = _statuses(s.receive(b'{"action":"subscribe","params":"A.X,T.X,5Ms.X"}').out)
    assert [o["status"] for o in out] == ["success", "error", "success"]
    s = _session(policy=TopicPolicy(bars_unavailable="no bars here"))
    s.receive(b'{"action":"auth","params":"good"}')
    (out,) = _statuses(s.receive(b'{"action":"subscribe","params":"5Ms.X"}').out)
    assert out["message"] == "no bars here: 5Ms.X"


# -- demand and backoff -----------------------------------------------------------------------------------------


def test_demand_refcounts_with_grace():
    d = TopicDemand(grace_ms=1000, static=["T.*"])
    assert d.add(["T.AAPL", "T.AAPL", "Q.X"]) == ["T.AAPL", "Q.X"]
    d.remove(["T.AAPL"], now_ms=0)
    d.remove(["Q.X", "T.*"], now_ms=0)
    assert d.due(999) == [] and "Q.X" in d.wanted
    assert d.add(["Q.X"]) == []  # back within grace: never left upstream
    d.remove(["T.AAPL"], now_ms=10)
    assert d.next_due_ms() == 1010
    assert d.due(1010) == ["T.AAPL"]
    assert d.wanted == {"T.*", "Q.X"}


@given(st.lists(st.tuples(st.booleans(), st.sampled_from(["a", "b", "c"])), max_size=30))
def test_demand_with_no_grace_wants_exactly_the_counted_topics(ops):
    d = TopicDemand(grace_ms=0, static=["s"])
    counts: dict[str, int] = {}
    subscribed: set[str] = {"s"}  # what the upstream holds, replayed from add()'s and due()'s answers
    for now, (add, topic) in enumerate(ops):
        if add:
            subscribed.update(d.add([topic]))
            counts[topic] = counts.get(topic, 0) + 1
        elif counts.get(topic):
            d.remove([topic], now)
            counts[topic] -= 1
        subscribed.difference_update(d.due(now))
        expected = {t for t, n in counts.items() if n > 0} | {"s"}
        assert d.wanted == expected  # nothing unwanted lingers, nothing wanted is missing
        assert subscribed == expected  # and the subscribe/unsubscribe answers say exactly that


class _Extreme(random.Random):
    """An rng whose uniform draw is always the top (or bottom) of its range: shows the ceiling itself."""

    def __init__(self, top: bool) -> None:
        super().__init__(0)
        self.top = top

    def uniform(self, a: float, b: float) -> float:
        return b if self.top else a


def test_backoff_grows_caps_and_resets():
    b = Backoff(base_s=1, cap_s=8, rng=_Extreme(top=True))
    assert [b.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]  # doubles, then stays at the cap
    b.reset()
    assert b.next_delay() == 1
    low = Backoff(base_s=1, cap_s=8, rng=_Extreme(top=False))
    assert low.next_delay() == 0  # full jitter: a delay may be anything down to 0
    jittered = Backoff(base_s=1, cap_s=8, rng=random.Random(1))
    delays = [jittered.next_delay() for _ in range(6)]
    assert all(0 <= d <= c for d, c in zip(delays, [1, 2, 4, 8, 8, 8])) and len(set(delays)) == 6


# -- settings ---------------------------------------------------------------------------------------------------


def test_settings_cli_over_env_over_default():
    env = {"AUTH_TIMEOUT_S": "3", "MAX_CLIENTS": "5"}
    s = load_settings(HubSettings, ["--max-clients", "7"], env)
    assert (s.auth_timeout_s, s.max_clients, s.log_level) == (3.0, 7, "info")
    with pytest.raises(SettingsError, match=r"^MAX_CLIENTS \(environment or \.env\): cannot read 'many' as a whole"):
        load_settings(HubSettings, [], {"MAX_CLIENTS": "many"})
    with pytest.raises(SettingsError, match=r"^flag --auth-timeout-s: cannot read 'soon' as a number.*AUTH_TIMEOUT_S"):
        load_settings(HubSettings, ["--auth-timeout-s", "soon"], env)


def test_client_keys_from_list_and_file(tmp_path):
    f = tmp_path / "keys"
    f.write_text("k2 # team\n\n# comment\nk3\n")
    s = HubSettings(api_keys="k1, ,k2", keys_file=str(f))
    assert s.client_keys() == {"k1", "k2", "k3"}


def test_metrics_types_in_prometheus_text():
    from common.metrics import Metrics

    m = Metrics("p")
    m.inc("frames", 2, upstream="a")
    m.gauge("clients", lambda: 3, "Connected clients.")
    m.counter_from("bars_out", lambda: {(("cluster", "stocks"),): 7}, "Bars emitted.")
    text = m.prometheus()
    assert "# TYPE tickfan_frames counter" in text
    assert "# TYPE tickfan_clients gauge" in text
    assert "# TYPE tickfan_bars_out counter" in text
    assert 'tickfan_bars_out{process="p",cluster="stocks"} 7' in text
    assert m.snapshot()["bars_out"] == {"cluster=stocks": 7}


def test_gauges_of_one_name_from_several_sources_are_merged():
    from common.metrics import Metrics

    m = Metrics("proxy")
    m.gauge("upstream_connected", lambda: {(("upstream", "firehose/stocks"),): 1.0}, "1 while up.")
    m.gauge("upstream_connected", lambda: {(("upstream", "ms_aggregator/stocks"),): 0.0})
    text = m.prometheus()
    assert 'tickfan_upstream_connected{process="proxy",upstream="firehose/stocks"} 1' in text
    assert 'tickfan_upstream_connected{process="proxy",upstream="ms_aggregator/stocks"} 0' in text
    assert m.snapshot()["upstream_connected"] == {"upstream=firehose/stocks": 1.0, "upstream=ms_aggregator/stocks": 0.0}
