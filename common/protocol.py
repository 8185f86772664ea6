"""Polygon websocket protocol messages, with the exact texts official clients see (DESIGN §2).

Server→client status objects are built here as compact JSON bytes (one object each; framing is
:mod:`common.frames`' job). Client→server messages are decoded into :class:`ClientMessage`.
"""

from __future__ import annotations

import re

import msgspec

# Close codes (DESIGN §2 "Close codes").
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013

ACTIONS = ("auth", "subscribe", "unsubscribe")


class Status(msgspec.Struct, frozen=True):
    ev: str
    status: str
    message: str


_status_encoder = msgspec.json.Encoder()


def status(status: str, message: str) -> bytes:
    """One ``{"ev":"status",...}`` object as JSON bytes."""
    return _status_encoder.encode(Status("status", status, message))


CONNECTED = status("connected", "Connected Successfully")
AUTH_SUCCESS = status("auth_success", "authenticated")
AUTH_FAILED = status("auth_failed", "authentication failed")
AUTH_TIMEOUT = status("auth_timeout", "No authentication request received.")
AUTH_REQUIRED = status("auth_required", "authentication required")
MAX_CONNECTIONS = status("max_connections", "Maximum number of websocket connections exceeded.")


def subscribed(topic: str) -> bytes:
    return status("success", f"subscribed to: {topic}")


def unsubscribed(topic: str) -> bytes:
    # "unsubscribed to" (sic) is what Polygon sends.
    return status("success", f"unsubscribed to: {topic}")


def error(message: str) -> bytes:
    return status("error", message)


def slow_consumer(limit_bytes: int) -> bytes:
    return status(
        "slow_consumer",
        f"client is not reading fast enough: more than {limit_bytes} bytes pending; "
        "closing with 1013, reconnect and re-subscribe to resume",
    )


UPSTREAM_DOWN = "upstream_down"
UPSTREAM_RESTORED = "upstream_restored"
_DOWN_SUFFIX = "; it will resume by itself"
_OUTAGE = re.compile(r"^(\S+) (?:(\S+) )?feed (?:interrupted: |restored after )")


def upstream_down(cluster: str, reason: str, scope: str | None = None) -> bytes:
    """Told to every client whose topics depend on a lost upstream (DESIGN §2, "Telling clients what happened").
    ``scope`` names the one event code affected (``PY`` when only Pyth is out); None: the cluster's whole feed."""
    return status(UPSTREAM_DOWN, f"{_feed(cluster, scope)} interrupted: {reason}{_DOWN_SUFFIX}")


def upstream_restored(cluster: str, down_s: float, scope: str | None = None) -> bytes:
    return status(UPSTREAM_RESTORED, f"{_feed(cluster, scope)} restored after {down_s:.1f} s")


def _feed(cluster: str, scope: str | None) -> str:
    return f"{cluster} feed" if scope is None else f"{cluster} {scope} feed"


def outage_scope(message: str) -> str | None:
    """The event code an ``upstream_down``/``upstream_restored`` message is limited to, or None for a whole feed."""
    m = _OUTAGE.match(message)
    return m.group(2) if m else None


def upstream_down_reason(message: str) -> str:
    """The reason inside an ``upstream_down`` message from the tier above (the message itself if not ours)."""
    _, sep, rest = message.partition(" feed interrupted: ")
    reason = rest if sep else message
    return reason[: -len(_DOWN_SUFFIX)] if reason.endswith(_DOWN_SUFFIX) else reason


class ClientMessage(msgspec.Struct, frozen=True):
    action: str
    params: str = ""


class ProtocolError(ValueError):
    """A client message that cannot be acted on; ``str(err)`` is the client-facing reason."""


_client_decoder = msgspec.json.Decoder(ClientMessage)


def decode_client_message(data: bytes | str) -> ClientMessage:
    """Decode one client message; raises :class:`ProtocolError` naming the problem."""
    try:
        msg = _client_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid message: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from None
    if msg.action not in ACTIONS:
        raise ProtocolError(f"unknown action: {msg.action!r} (expected one of {', '.join(ACTIONS)})")
    return msg


def encode_client_message(action: str, params: str) -> bytes:
    return msgspec.json.encode(ClientMessage(action, params))
