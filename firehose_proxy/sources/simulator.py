"""The simulated market as a Polygon-protocol server on a real socket (DESIGN §3).

The firehose starts one on a loopback port when no key is set, and connects to it through the same upstream
client it uses for Polygon, so the default run exercises the real client path. ``tickfan-sim`` runs it alone,
as a stand-in upstream or a load generator.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from common.clock import wall_ms
from common.clusters import CLUSTERS, PYTH_CODE
from common.frames import event_from_object
from common.hub import Hub
from common.metrics import Metrics
from common.runner import run_process
from common.session import TopicPolicy
from common.settings import HubSettings, SettingsError, setting
from firehose_proxy.sources.market import MarketConfig, SimulatedMarket

TICK_S = 0.005  # how often the market advances: trades reach clients within ~5 ms of their timestamp
# Every native code but PY: Pyth prices come from Hermes (or its simulator), never from a Polygon-protocol server.
POLYGON_CODES = frozenset(c for cluster in CLUSTERS.values() for c in cluster.native_codes if c != PYTH_CODE)


@dataclass(frozen=True)
class SimulatorSettings(HubSettings):
    """The simulated market served alone: a Polygon-protocol server for tests, demos and load."""

    host: str = setting("127.0.0.1", "SIM_HOST", "Address the standalone simulator listens on.")
    port: int = setting(8769, "SIM_PORT", "Port the standalone simulator listens on.")
    rate: float = setting(2000.0, "SIM_RATE", "Simulated stock trades per second.")
    seed: int = setting(7, "SIM_SEED", "Seed of the simulated market.")
    tickers: str = setting("", "SIM_TICKERS", "Comma list of simulated stock tickers. Empty: a few dozen well-known ones.")
    minute_ms: int = setting(60_000, "SIM_MINUTE_MS", "Window of simulated minute aggregates (AM, XA, CA, …); shorter compresses time for demos and tests.")


def market_config(rate: float, seed: int, tickers: str, minute_ms: int = 60_000) -> MarketConfig:
    names = tuple(t.strip() for t in tickers.split(",") if t.strip())
    if minute_ms <= 0 or minute_ms % 1000:
        raise SettingsError(f"SIM_MINUTE_MS must be a positive whole number of seconds in ms, not {minute_ms}")
    config = MarketConfig(seed=seed, trades_per_second=rate, minute_ms=minute_ms)
    if names:
        config.stock_tickers = names
    return config


class SimulatedUpstream:
    """A :class:`Hub` fed by a :class:`SimulatedMarket` on a timer."""

    def __init__(self, config: MarketConfig, settings: HubSettings, log, metrics: Metrics | None = None) -> None:
        self.market = SimulatedMarket(config, start_ms=wall_ms())
        policy = TopicPolicy(codes=POLYGON_CODES, bars_unavailable="the simulated market sells no ms bars")
        self.hub = Hub("simulator", settings, policy, log, metrics or Metrics("simulator"))
        self._ticker: asyncio.Task | None = None

    async def start(self, host: str, port: int) -> int:
        bound = await self.hub.start(host, port)
        self._ticker = asyncio.get_running_loop().create_task(self._run())
        return bound

    async def _run(self) -> None:
        hub = self.hub
        while True:
            for cluster, objects in self.market.advance(wall_ms()).items():
                if objects and hub.indexes[cluster]:
                    hub.publish(cluster, [event_from_object(o) for o in objects])
            await asyncio.sleep(TICK_S)

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        await self.hub.close()


async def serve(settings: SimulatorSettings, log, stop: asyncio.Event) -> None:
    sim = SimulatedUpstream(market_config(settings.rate, settings.seed, settings.tickers, settings.minute_ms), settings, log)
    await sim.start(settings.host, settings.port)
    log.warning("simulated_market", message="serving SIMULATED market data", rate=settings.rate, seed=settings.seed)
    await stop.wait()
    await sim.close()


def main(argv=None) -> int:
    return run_process("simulator", SimulatorSettings, serve, argv)


if __name__ == "__main__":
    raise SystemExit(main())
