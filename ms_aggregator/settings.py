"""Settings of the ms_aggregator process."""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import TierSettings, setting
from ms_aggregator.book import DEFAULT_GRACE_MS


@dataclass(frozen=True)
class AggregatorSettings(TierSettings):
    """The ms_aggregator: builds NMs millisecond bars from the firehose's trades; relays aggregates."""

    host: str = setting("127.0.0.1", "MS_AGGREGATOR_HOST", "Address the aggregator listens on.")
    port: int = setting(8768, "MS_AGGREGATOR_PORT", "Port the aggregator listens on.")
    firehose_url: str = setting("ws://127.0.0.1:8767", "FIREHOSE_URL", "The firehose to take trades and aggregates from.")
    bar_grace_ms: int = setting(
        DEFAULT_GRACE_MS, "BAR_GRACE_MS", "A window [s, e) closes when the market clock passes e + this (see README)."
    )
    bar_tick_ms: float = setting(1.0, "BAR_TICK_MS", "How often due windows are closed.")
    conditions_file: str = setting(
        "", "CONDITIONS_FILE", "A /v3/reference/conditions JSON download to use instead of the bundled rules."
    )
