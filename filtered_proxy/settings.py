"""Settings of a filtered proxy process."""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import TierSettings, setting


@dataclass(frozen=True)
class ProxySettings(TierSettings):
    """A filtered proxy: client auth, subscriptions and per-client filtering (run more on other ports to scale out)."""

    host: str = setting("127.0.0.1", "FILTERED_PROXY_HOST", "Address the proxy listens on.")
    port: int = setting(8765, "FILTERED_PROXY_PORT", "Port the proxy listens on.")
    firehose_url: str = setting("ws://127.0.0.1:8767", "FIREHOSE_URL", "The firehose to take native topics from.")
    aggregator_url: str = setting(
        "ws://127.0.0.1:8768", "MS_AGGREGATOR_URL", "The ms_aggregator to take NMs bars from. Empty: no bars."
    )
