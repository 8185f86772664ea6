"""Settings of the ms_aggregator process (what each setting means is in its help text and in the README)."""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import SettingsError, TierSettings, setting
from ms_aggregator.amend import DEFAULT_AMEND_MAX_BARS, LATE_POLICIES
from ms_aggregator.book import (
    DEFAULT_AMEND_WINDOW_MS,
    DEFAULT_GRACE_MS,
    DEFAULT_HOLD_MS,
    DEFAULT_IDLE_MS,
)


@dataclass(frozen=True)
class AggregatorSettings(TierSettings):
    """The ms_aggregator: builds NMs millisecond bars from the firehose's trades; relays aggregates."""

    host: str = setting("127.0.0.1", "MS_AGGREGATOR_HOST", "Address the aggregator listens on.")
    port: int = setting(8768, "MS_AGGREGATOR_PORT", "Port the aggregator listens on.")
    firehose_url: str = setting("ws://127.0.0.1:8767", "FIREHOSE_URL", "The firehose to take trades and aggregates from.")
    bar_grace_ms: int = setting(
        DEFAULT_GRACE_MS, "BAR_GRACE_MS", "A window [s, e) closes when its sources' clocks pass e + this (see README)."
    )
    bar_tick_ms: float = setting(1.0, "BAR_TICK_MS", "How often due windows are closed.")
    late_trades: str = setting(
        "drop", "LATE_TRADES", "drop: late trades are counted and dropped. amend: a corrected bar is re-sent with rev."
    )
    amend_window_ms: int = setting(
        DEFAULT_AMEND_WINDOW_MS, "AMEND_WINDOW_MS", "With amend: how long after its end a bar can still be corrected."
    )
    amend_max_bars: int = setting(
        DEFAULT_AMEND_MAX_BARS, "AMEND_MAX_BARS",
        "With amend: closed bars kept per cluster for corrections (~400 B each); beyond it the oldest are given up.",
    )
    source_hold_s: float = setting(
        DEFAULT_HOLD_MS / 1000, "SOURCE_HOLD_S",
        "A source holds a ticker's windows open until it has not traded the ticker for this long (up to twice).",
    )
    series_idle_s: float = setting(
        DEFAULT_IDLE_MS / 1000, "SERIES_IDLE_S",
        "A ticker without trades for this long (plus up to SOURCE_HOLD_S) gives its memory back.",
    )
    conditions_file: str = setting(
        "", "CONDITIONS_FILE", "A /v3/reference/conditions JSON download (stocks and options) to use instead of the bundled rules."
    )

    def __post_init__(self) -> None:
        if self.late_trades not in LATE_POLICIES:
            raise SettingsError(f"LATE_TRADES (--late-trades) must be one of {', '.join(LATE_POLICIES)}, "
                                f"not {self.late_trades!r}")
        for name, env, value in (("amend-window-ms", "AMEND_WINDOW_MS", self.amend_window_ms),
                                 ("bar-grace-ms", "BAR_GRACE_MS", self.bar_grace_ms)):
            if value < 0:
                raise SettingsError(f"{env} (--{name}) must be >= 0, not {value}")
        for name, env, value in (("source-hold-s", "SOURCE_HOLD_S", self.source_hold_s),
                                 ("series-idle-s", "SERIES_IDLE_S", self.series_idle_s),
                                 ("bar-tick-ms", "BAR_TICK_MS", self.bar_tick_ms),
                                 ("amend-max-bars", "AMEND_MAX_BARS", self.amend_max_bars)):
            if value <= 0:
                raise SettingsError(f"{env} (--{name}) must be > 0, not {value}")
