"""Where the firehose's data comes from: Polygon, any Polygon-protocol server, or the built-in simulated market, plus
Pyth Hermes (real or simulated) for ``PY`` prices; or, instead of all of them, a recording (``REPLAY``).

:func:`open_source` picks the Polygon-protocol source from the settings and returns the base URL and key the
upstream client connects with; the simulated market is started on a loopback port first, so every source goes
through the same client. :func:`open_pyth` does the same for Hermes. Neither is opened when replaying.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from common.settings import HubSettings
from firehose_proxy.settings import FirehoseSettings
from firehose_proxy.sources.pyth.simulator import hermes_simulator
from firehose_proxy.sources.simulator import SimulatedUpstream, market_config

PUBLIC_HERMES = "https://hermes.pyth.network"
PYTH_OFF = "off"


@dataclass(frozen=True)
class UpstreamSource:
    name: str  # "polygon", "upstream_url" or "simulated"
    base_url: str  # the cluster path is appended
    key: str
    close: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True)
class PythEndpoint:
    name: str  # "hermes" or "simulated"
    base_url: str
    key: str
    close: Callable[[], Awaitable[None]] | None = None


async def open_source(settings: FirehoseSettings, log) -> UpstreamSource:
    """The source the settings ask for (the key wins over nothing, ``UPSTREAM_URL`` over the key)."""
    if settings.upstream_url:
        return UpstreamSource("upstream_url", settings.upstream_url.rstrip("/"), settings.polygon_api_key or "tickfan")
    if settings.polygon_api_key:
        return UpstreamSource("polygon", f"wss://{settings.polygon_host}", settings.polygon_api_key)
    sim = SimulatedUpstream(market_config(settings.sim_rate, settings.sim_seed, settings.sim_tickers, settings.sim_minute_ms),
                             HubSettings(), log)
    port = await sim.start("127.0.0.1", 0)
    log.warning("simulated_market", message="no POLYGON_API_KEY or UPSTREAM_URL: serving SIMULATED market data",
                rate=settings.sim_rate, seed=settings.sim_seed)
    return UpstreamSource("simulated", f"ws://127.0.0.1:{port}", "simulated", sim.close)


async def open_pyth(settings: FirehoseSettings, log) -> PythEndpoint | None:
    """Hermes as ``PYTH_HERMES_URL`` says: a URL, ``off``, or empty (public Hermes with a Polygon key, else the
    built-in simulator on a loopback port, its feeds the simulated market's tickers)."""
    url = settings.pyth_hermes_url.strip()
    if url.lower() == PYTH_OFF:
        return None
    if url:
        return PythEndpoint("hermes", url.rstrip("/"), settings.pyth_api_key)
    if settings.polygon_api_key:
        return PythEndpoint("hermes", PUBLIC_HERMES, settings.pyth_api_key)
    sim = hermes_simulator(settings.sim_seed, log, market_config(settings.sim_rate, settings.sim_seed,
                                                                  settings.sim_tickers))
    port = await sim.start("127.0.0.1", 0)
    log.warning("simulated_pyth", message="no POLYGON_API_KEY or PYTH_HERMES_URL: serving SIMULATED Pyth prices")
    return PythEndpoint("simulated", f"http://127.0.0.1:{port}", "", sim.close)
