"""One settings object per process: dataclass fields read from CLI flags, then the environment / ``.env``, then defaults.

Each field names its environment variable and says what it does; :func:`settings_table` renders that as the
README's settings table, so the two cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

from dotenv import load_dotenv

T = TypeVar("T")


def setting(default: Any, env: str, help: str) -> Any:
    return field(default=default, metadata={"env": env, "help": help})


class SettingsError(ValueError):
    """A setting that makes the process refuse to start; the message says what to change."""


@dataclass(frozen=True)
class HubSettings:
    """What every tier's downstream hub shares. Tiers add host, port and their own settings."""

    api_keys: str = setting("", "TICKFAN_API_KEYS", "Comma list of client API keys accepted. Empty: any key, loopback only.")
    keys_file: str = setting("", "TICKFAN_KEYS_FILE", "File with one client API key per line (# comments), added to TICKFAN_API_KEYS.")
    internal_token: str = setting(
        "", "TICKFAN_INTERNAL_TOKEN", "Token the tiers use to authenticate to each other. Required when keys are set."
    )
    auth_timeout_s: float = setting(10.0, "AUTH_TIMEOUT_S", "Seconds a client has to authenticate before auth_timeout.")
    max_clients: int = setting(1000, "MAX_CLIENTS", "Authenticated clients per process; more get max_connections.")
    client_buffer_bytes: int = setting(
        8 << 20, "CLIENT_BUFFER_BYTES", "Outgoing bytes a client may have pending before it is cut off as a slow consumer."
    )
    internal_buffer_bytes: int = setting(
        64 << 20, "INTERNAL_BUFFER_BYTES",
        "The same bound for tiers that connect with the internal token (a proxy or the aggregator below this tier).",
    )
    max_message_bytes: int = setting(
        64 << 10, "MAX_CLIENT_MESSAGE_BYTES", "Largest client message acted on; larger ones get an error (over 1 MiB: close 1009)."
    )
    log_level: str = setting("info", "LOG_LEVEL", "debug, info, warning or error.")

    def client_keys(self) -> frozenset[str]:
        keys = {k.strip() for k in self.api_keys.split(",") if k.strip()}
        if self.keys_file:
            for line in Path(self.keys_file).read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    keys.add(line)
        return frozenset(keys)


# What the tiers send each other when no keys are configured (loopback only): any key is accepted then.
PLACEHOLDER_INTERNAL_TOKEN = "tickfan-internal"


@dataclass(frozen=True)
class TierSettings(HubSettings):
    """What the three tiers share beyond the hub: they are each also a client of an upstream."""

    upstream_grace_s: float = setting(30.0, "UPSTREAM_GRACE_S", "Seconds a topic nobody wants stays subscribed upstream.")
    upstream_timeout_s: float = setting(
        20.0, "UPSTREAM_TIMEOUT_S", "An upstream that answers no ping for this long is treated as down and reconnected."
    )

    @property
    def upstream_grace_ms(self) -> int:
        return int(self.upstream_grace_s * 1000)

    def upstream_token(self) -> str:
        """The token this tier authenticates to the tier above with."""
        return self.internal_token or PLACEHOLDER_INTERNAL_TOKEN


def check_exposure(host: str, keys: frozenset[str], internal_token: str) -> None:
    """Refuse to serve beyond loopback without client keys, and keys without an internal token (DESIGN §4)."""
    if not keys and not is_loopback(host):
        raise SettingsError(
            f"refusing to listen on {host} with no client keys: set TICKFAN_API_KEYS or TICKFAN_KEYS_FILE, "
            "or bind to 127.0.0.1"
        )
    if keys and not internal_token:
        raise SettingsError("client keys are set but TICKFAN_INTERNAL_TOKEN is not: the tiers could not reach each other")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(cls: type[T], argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> T:
    """Build ``cls`` from CLI flags (``--field-name``) over the environment and ``.env`` over the defaults."""
    if environ is None:
        load_dotenv(override=False)
        environ = os.environ
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    parser = argparse.ArgumentParser(description=(cls.__doc__ or "").strip().splitlines()[0])
    for f in fields:
        parser.add_argument(
            "--" + f.name.replace("_", "-"), dest=f.name, default=None, help=f"{f.metadata['help']} [{f.metadata['env']}]"
        )
    args = parser.parse_args(argv)
    values = {}
    for f in fields:
        flag, env = "--" + f.name.replace("_", "-"), f.metadata["env"]
        raw, source = getattr(args, f.name), f"flag {flag}"
        if raw is None:
            raw, source = environ.get(env), f"{env} (environment or .env)"
        if raw is None:
            continue
        try:
            values[f.name] = _convert(raw, type(f.default))
        except ValueError:
            raise SettingsError(
                f"{source}: cannot read {raw!r} as {_KIND_NAMES.get(type(f.default), type(f.default).__name__)} "
                f"(the setting is {env}, flag {flag})"
            ) from None
    return cls(**values)


_KIND_NAMES = {int: "a whole number", float: "a number", bool: "true/false", str: "text"}


def _convert(raw: str, kind: type) -> Any:
    if kind is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(raw)
    return kind(raw)


def settings_table(cls: type) -> str:
    """The README rows for ``cls``: variable, flag, default, meaning."""
    rows = ["| variable | flag | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        default = f.default if f.default != "" else "(empty)"
        rows.append(f"| `{f.metadata['env']}` | `--{f.name.replace('_', '-')}` | `{default}` | {f.metadata['help']} |")
    return "\n".join(rows)
