"""The stack the way users start it: honcho with the Procfile, installed commands on PATH (no .venv/ in the Procfile)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT, connect, free_port, http_get, wait_for


def test_procfile_names_installed_commands_only():
    commands = [line.split(":", 1)[1].split() for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    assert [c[1] for c in commands] == ["tickfan-firehose", "tickfan-aggregator", "tickfan-proxy"]
    assert all(c[0] == "exec" and "/" not in c[1] for c in commands)


async def test_honcho_starts_the_stack_from_the_users_path_and_stops_it_cleanly(tmp_path):
    bin_dir = Path(sys.executable).parent  # the environment tickfan is installed in, wherever that is
    fh, agg, px = free_port(), free_port(), free_port()
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "SIM_RATE": "2000",
        "FIREHOSE_PORT": str(fh), "MS_AGGREGATOR_PORT": str(agg), "FILTERED_PROXY_PORT": str(px),
        "FIREHOSE_URL": f"ws://127.0.0.1:{fh}", "MS_AGGREGATOR_URL": f"ws://127.0.0.1:{agg}",
    }
    log = open(tmp_path / "honcho.log", "wb")
    honcho = subprocess.Popen([str(bin_dir / "honcho"), "start", "-f", str(ROOT / "Procfile"), "-d", str(tmp_path),
                               "-e", os.devnull, "--no-colour"], cwd=tmp_path, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        await asyncio.to_thread(wait_for, lambda: http_get(px, "/health", 0.5)[0] == 200, 20, "the proxy")
        client = await connect(px)
        await client.send({"action": "subscribe", "params": "T.*,100Ms.*"})
        await client.until(lambda ev: {"T", "MB"} <= {e["ev"] for e in ev}, timeout=15, what="trades and bars")
        honcho.send_signal(signal.SIGTERM)
        await asyncio.to_thread(honcho.wait, 10)  # honcho itself answers SIGTERM with 143; the tiers must exit 0
    finally:
        if honcho.poll() is None:  # the test failed midway: honcho stops its tiers on SIGTERM, then give up on it
            honcho.send_signal(signal.SIGTERM)
            try:
                honcho.wait(8)
            except subprocess.TimeoutExpired:
                os.killpg(honcho.pid, signal.SIGKILL)
        log.close()
    text = (tmp_path / "honcho.log").read_text()
    assert "not found" not in text and "Traceback" not in text, text[-3000:]
    for tier in ("firehose", "aggregator", "proxy"):
        assert f"{tier}.1 stopped (rc=0)" in text, text[-3000:]
    # tiers starting together and stopping together is no outage: no warnings about upstreams either way
    noisy = [line for line in text.splitlines() if '"level": "warning"' in line and '"upstream' in line]
    assert not noisy, noisy
