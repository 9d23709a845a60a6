"""HTTP/1.1 bytes: header rules, problem responses and request ids. No I/O."""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from itertools import count
from typing import TypeVar, cast

# Hop-by-hop headers (RFC 9110 7.6.1), never forwarded as they are. Framing headers are
# rebuilt by the gateway; Upgrade passes only on an upgrade.
HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",  # re-added by the framing logic
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)

REASONS: dict[int, bytes] = {
    400: b"Bad Request",
    413: b"Content Too Large",
    429: b"Too Many Requests",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}

TITLES: dict[int, str] = {
    400: "Bad request",
    413: "Request body too large",
    429: "Rate limit exceeded",
    404: "No route",
    405: "Method not allowed",
    408: "Request timeout",
    414: "Request line too long",
    431: "Request headers too large",
    501: "Not implemented",
    502: "Bad gateway",
    503: "No ready replica",
    504: "Gateway timeout",
}

_TOKEN_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:+=/@")
MAX_REQUEST_ID = 128


def problem_body(status: int, detail: str, fix: str = "") -> bytes:
    """An RFC 9457 problem document, encoded."""
    doc: dict[str, object] = {
        "type": f"https://gs-engine.dev/problems/gateway-{status}",
        "title": TITLES.get(status, "Gateway error"),
        "status": status,
        "detail": detail,
    }
    if fix:
        doc["fix"] = fix
    return json.dumps(doc, separators=(",", ":")).encode()


def problem_response(
    status: int,
    body: bytes,
    request_id_header: bytes,
    request_id: bytes,
    *,
    close: bool,
    retry_after: int = 0,
    head_only: bool = False,
) -> bytes:
    parts = [
        b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Error")),
        b"content-type: application/problem+json\r\ncontent-length: %d\r\n" % len(body),
        b"%s: %s\r\nvia: 1.1 gse\r\n" % (request_id_header, request_id),
    ]
    if retry_after:
        parts.append(b"retry-after: %d\r\n" % retry_after)
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if not head_only:
        parts.append(body)
    return b"".join(parts)


def sane_request_id(value: bytes) -> bool:
    return 0 < len(value) <= MAX_REQUEST_ID and all(c in _TOKEN_CHARS for c in value)


class RequestIds:
    """Short unique ids: a per-process random prefix and a counter."""

    __slots__ = ("prefix", "next")

    def __init__(self, prefix: bytes | None = None) -> None:
        self.prefix = prefix if prefix is not None else os.urandom(4).hex().encode()
        self.next = count(1).__next__  # the proxy builds ids inline from these two

    def new(self) -> bytes:
        return request_id(self.prefix, self.next())


def connection_tokens(values: list[bytes]) -> set[bytes]:
    """The lower-cased options named in Connection headers."""
    out: set[bytes] = set()
    for value in values:
        for token in value.split(b","):
            token = token.strip().lower()
            if token:
                out.add(token)
    return out


def is_chunked_final(values: list[bytes]) -> bool:
    """True when Transfer-Encoding is exactly `chunked` (the only coding this gateway frames)."""
    codings = [c.strip().lower() for v in values for c in v.split(b",")]
    return codings == [b"chunked"]


def header_lines_pattern(names: Iterable[bytes]) -> re.Pattern[bytes]:
    """Matches "\\r\\nName: value" for the given (lower-case) names, any case; groups name, value.

    Names are grouped by first letter so the matcher tries one branch per line, not every name.
    """
    by_first: dict[bytes, list[bytes]] = {}
    for name in sorted(set(names), key=len, reverse=True):
        by_first.setdefault(name[:1], []).append(name[1:])
    alternatives = b"|".join(
        re.escape(first) + b"(?:" + b"|".join(re.escape(rest) for rest in rests) + b")"
        for first, rests in sorted(by_first.items())
    )
    return re.compile(rb"\r\n(" + alternatives + rb")[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


_F = TypeVar("_F", bound=Callable[..., object])
# what `response_fields` finds: the kept lines, Content-Length, whether Transfer-Encoding was
# sent, Connection values naming more than keep-alive/close/upgrade, and Upgrade
ResponseFields = tuple[bytes, bytes | None, bool, list[bytes] | None, bytes | None]
# Connection options that name no header (the others make the headers they name hop-by-hop)
PLAIN_CONNECTION: frozenset[bytes] = frozenset({b"keep-alive", b"close", b"upgrade"})


@lru_cache(maxsize=8)
def _dropped_fields(request_id_header: bytes) -> re.Pattern[bytes]:
    return header_lines_pattern(HOP_BY_HOP | {request_id_header})


def response_fields_py(fields: bytes, request_id_header: bytes) -> ResponseFields:
    """Split a response's "\\r\\nName: value" lines into the ones passed on and the ones read.

    Hop-by-hop lines and the request id line (`request_id_header`, lower-case) are dropped
    (the gateway rebuilds framing and sets its own id); the rest are kept byte for byte, in
    order. `_http1c` is the compiled twin of this function; the two are checked against each other.
    """
    # one split: kept text, then (name, value) of each dropped line, kept text, ...
    parts = _dropped_fields(request_id_header).split(fields)
    if len(parts) == 1:
        return fields, None, False, None, None
    content_length: bytes | None = None
    chunked = False
    conn_values: list[bytes] | None = None
    upgrade: bytes | None = None
    for i in range(1, len(parts), 3):
        lname = parts[i].lower()
        value = parts[i + 1]
        if lname == b"content-length":
            content_length = value.strip()
        elif lname == b"transfer-encoding":
            chunked = True
        elif lname == b"connection":
            if value.strip().lower() not in PLAIN_CONNECTION:
                conn_values = [value] if conn_values is None else [*conn_values, value]
        elif lname == b"upgrade":
            upgrade = value.strip()
    return b"".join(parts[0::3]), content_length, chunked, conn_values, upgrade


def _compiled(name: str, fallback: _F) -> _F:
    """`_http1c`'s version of a function here, or the Python one where that is not built or used."""
    try:
        compiled = importlib.import_module("gs_engine.gateway._http1c")
    except ImportError:  # not built, or the Python gateway was asked for (GSE_GATEWAY_PURE)
        return fallback
    return cast(_F, getattr(compiled, name))


def join_bytes_py(pieces: list[bytes] | tuple[bytes, ...]) -> bytes:
    return b"".join(pieces)


def request_id_py(prefix: bytes, n: int) -> bytes:
    return b"%s-%x" % (prefix, n)


response_fields = _compiled("response_fields", response_fields_py)
request_id = _compiled("request_id", request_id_py)  # "<prefix>-<n in hex>"
join_bytes = _compiled("join", join_bytes_py)  # b"".join, without the buffer protocol per piece
