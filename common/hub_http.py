"""Plain HTTP GETs on a hub's port (DESIGN §2): ``/health``, ``/status`` (JSON), ``/metrics`` (Prometheus text).

The hub's websocket server hands every request without ``Upgrade: websocket`` here and sends the response
this module builds, then closes the connection. It reads what it is given; it never touches a socket itself.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Callable

import msgspec
from picows import WSUpgradeRequest, WSUpgradeResponse, WSUpgradeResponseWithListener

from common.metrics import Metrics

NOT_FOUND = b"not found: try /health, /status, /metrics or a websocket on /stocks\n"
TEXT = "text/plain; charset=utf-8"


def is_upgrade(request: WSUpgradeRequest) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def request_path(request: WSUpgradeRequest) -> str:
    """The request's path without its query string."""
    return request.path.decode("latin-1").split("?", 1)[0]


def answer(path: str, status: Callable[[], dict], metrics: Metrics,
           health: Callable[[], list[str]] = lambda: []) -> WSUpgradeResponseWithListener:
    """The response to a plain ``GET path``. ``/health`` is 503 with the reasons while ``health()`` names problems."""
    if path == "/health":
        problems = health()
        if problems:
            body = "unhealthy:\n" + "".join(f"- {p}\n" for p in problems)
            return _response(HTTPStatus.SERVICE_UNAVAILABLE, body.encode(), TEXT)
        return _response(HTTPStatus.OK, b"ok\n", TEXT)
    if path == "/status":
        return _response(HTTPStatus.OK, msgspec.json.encode(status()) + b"\n", "application/json")
    if path == "/metrics":
        return _response(HTTPStatus.OK, metrics.prometheus().encode(), "text/plain; version=0.0.4; charset=utf-8")
    return _response(HTTPStatus.NOT_FOUND, NOT_FOUND, TEXT)


def _response(status: HTTPStatus, body: bytes, content_type: str) -> WSUpgradeResponseWithListener:
    headers = [("Content-Type", content_type)]
    if status == HTTPStatus.OK:
        response = WSUpgradeResponse.create_ok_response(body, headers)
    else:
        response = WSUpgradeResponse.create_error_response(status, body, headers)
    return WSUpgradeResponseWithListener(response, None)
