"""Where the firehose's data comes from: Polygon, any Polygon-protocol server, or the built-in simulated market.

:func:`open_source` picks one from the settings and returns the base URL and key the upstream client connects
with; the simulated market is started on a loopback port first, so every source goes through the same client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from common.settings import HubSettings
from firehose_proxy.settings import FirehoseSettings
from firehose_proxy.sources.simulator import SimulatedUpstream, market_config


@dataclass(frozen=True)
class UpstreamSource:
    name: str  # "polygon", "upstream_url" or "simulated"
    base_url: str  # the cluster path is appended
    key: str
    close: Callable[[], Awaitable[None]] | None = None


async def open_source(settings: FirehoseSettings, log) -> UpstreamSource:
    """The source the settings ask for (the key wins over nothing, ``UPSTREAM_URL`` over the key)."""
    if settings.upstream_url:
        return UpstreamSource("upstream_url", settings.upstream_url.rstrip("/"), settings.polygon_api_key or "tickfan")
    if settings.polygon_api_key:
        return UpstreamSource("polygon", f"wss://{settings.polygon_host}", settings.polygon_api_key)
    sim = SimulatedUpstream(market_config(settings.sim_rate, settings.sim_seed, settings.sim_tickers), HubSettings(), log)
    port = await sim.start("127.0.0.1", 0)
    log.warning("simulated_market", message="no POLYGON_API_KEY or UPSTREAM_URL: serving SIMULATED market data",
                rate=settings.sim_rate, seed=settings.sim_seed)
    return UpstreamSource("simulated", f"ws://127.0.0.1:{port}", "simulated", sim.close)
