"""The upstream client in process against the scripted Polygon-protocol server."""

from __future__ import annotations

import structlog

from common.backoff import Backoff
from common.metrics import Metrics
from common.upstream import UpstreamClient
from tests.helpers import async_wait_for
from tests.scripted_upstream import ScriptedUpstream

LOG = structlog.get_logger()


async def test_link_hook_reports_up_down_and_up_again():
    up = await ScriptedUpstream().start()
    links: list[tuple[bool, str]] = []
    client = UpstreamClient("t", f"{up.url}/stocks", "key", lambda frame: None, LOG, Metrics("t"), 1000,
                            backoff=Backoff(base_s=0.01, cap_s=0.05), on_link=lambda ok, why: links.append((ok, why)))
    client.start()
    try:
        await async_wait_for(lambda: links == [(True, "")], what="link up")
        await up.drop_all()
        await async_wait_for(lambda: len(links) >= 3, what="link down then up")
        assert links[1][0] is False and links[1][1], "a lost link says why"
        assert links[2] == (True, "")
    finally:
        await client.stop()
        await up.close()
    assert len(links) == 3, "a deliberate stop is not reported as a lost link"
