"""Processes of the benchmark: start tiers and helpers, read their CPU time and RSS from /proc."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIERS_ROOT = [ROOT]  # where the tiers' code is taken from (``--root``: compare another checkout, e.g. before a change)
TICK = os.sysconf("SC_CLK_TCK")


def env(extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TICKFAN_", "POLYGON_", "UPSTREAM_", "FIREHOSE_"))}
    return {**base, "PYTHONPATH": f"{TIERS_ROOT[0]}:{ROOT / 'scripts'}", "LOG_LEVEL": "warning", **extra}


def start_tier(module: str, port: int, extra: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, "--port", str(port)], env=env(extra), cwd=TIERS_ROOT[0],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


async def start_helper(module: str, *args: str) -> tuple[subprocess.Popen, int]:
    """A helper speaking line commands; returns it and the port it reports as ready."""
    proc = subprocess.Popen([sys.executable, "-m", module, *args], env=env({}), cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    words = (await asyncio.to_thread(proc.stdout.readline)).split()
    if not words or words[0] != "ready":
        raise RuntimeError(f"{module} did not start: {words}")
    return proc, int(words[1])


async def command(proc: subprocess.Popen, line: str) -> list[str]:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()
    return (await asyncio.to_thread(proc.stdout.readline)).split()


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=0.5) as r:
            return r.status == 200
    except OSError:
        return False


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(6)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
