"""Settings of the firehose process."""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import TierSettings, setting


@dataclass(frozen=True)
class FirehoseSettings(TierSettings):
    """The firehose: the only upstream connections; rebroadcasts raw frames to the tiers below."""

    host: str = setting("127.0.0.1", "FIREHOSE_HOST", "Address the firehose listens on.")
    port: int = setting(8767, "FIREHOSE_PORT", "Port the firehose listens on.")
    polygon_api_key: str = setting("", "POLYGON_API_KEY", "Polygon / Massive key. Empty: the built-in simulated market.")
    polygon_host: str = setting("socket.polygon.io", "POLYGON_HOST", "Upstream host, e.g. delayed.polygon.io or socket.massive.com.")
    upstream_url: str = setting(
        "", "UPSTREAM_URL", "Any Polygon-protocol server, e.g. ws://127.0.0.1:9000 (the cluster path is appended). Wins over the key."
    )
    subscribe: str = setting(
        "", "FIREHOSE_SUBSCRIBE", "Static upstream topics, always subscribed, e.g. T.*,Q.* ; prefix crypto/XT.* for other clusters."
    )
    sim_rate: float = setting(2000.0, "SIM_RATE", "Simulated stock trades per second (no key).")
    sim_seed: int = setting(7, "SIM_SEED", "Seed of the simulated market.")
    sim_tickers: str = setting("", "SIM_TICKERS", "Comma list of simulated stock tickers. Empty: a few dozen well-known ones.")
    sim_minute_ms: int = setting(60_000, "SIM_MINUTE_MS", "Window of simulated minute aggregates (AM, XA, CA, …); shorter compresses time for demos and tests.")
    pyth_hermes_url: str = setting(
        "", "PYTH_HERMES_URL",
        "Pyth Hermes for PY prices, e.g. https://hermes.pyth.network. Empty: that one with a Polygon key, else the "
        "built-in Hermes simulator. off: no PY.")
    pyth_api_key: str = setting("", "PYTH_API_KEY", "Optional Hermes API key, sent as a Bearer token.")
    pyth_feeds_refresh_s: float = setting(900.0, "PYTH_FEEDS_REFRESH_S", "Seconds between refreshes of Hermes' feed list.")
    record_dir: str = setting("", "RECORD_DIR", "Record every upstream frame to compressed files in this directory.")
    record_rotate_mb: float = setting(256.0, "RECORD_ROTATE_MB", "Start a new recording file after this many MB (and every hour).")
    replay: str = setting("", "REPLAY", "A recording (file or directory) to play instead of Polygon, the simulated market and Pyth.")
    replay_speed: float = setting(1.0, "REPLAY_SPEED", "Replay pace: 1 = original, 10 = ten times faster, 0 = as fast as clients take it.")
