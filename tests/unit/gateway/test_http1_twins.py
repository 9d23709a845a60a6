"""http1's functions with compiled twins: `response_fields` (which response header lines the
gateway drops, and what it reads from them), `join_bytes` and `request_id`.

Each compiled twin (in `_http1c`) must answer exactly as its Python function for any input.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gs_engine.gateway import http1
from gs_engine.gateway.http1 import response_fields_py

RID = b"x-request-id"
NOT_COMPILED = "the compiled gateway modules are not in use in this run"

try:
    from gs_engine.gateway import _http1c
except ImportError:  # not built here, or GSE_GATEWAY_PURE
    _http1c = None
response_fields_c = _http1c.response_fields if _http1c is not None else None


def test_hop_by_hop_lines_and_the_request_id_are_dropped_and_read() -> None:
    fields = (
        b"\r\nServer: nginx\r\nContent-Length:  64 \r\nConnection: keep-alive, X-Secret"
        b'\r\nX-Request-Id: spoofed\r\nTransfer-Encoding: chunked\r\nUpgrade: websocket\r\nETag: "a"'
    )
    kept, length, chunked, conn_values, upgrade = http1.response_fields(fields, RID)
    assert kept == b'\r\nServer: nginx\r\nETag: "a"'
    assert length == b"64"
    assert chunked is True
    assert conn_values == [b"keep-alive, X-Secret"]
    assert upgrade == b"websocket"


def test_a_head_without_hop_by_hop_lines_is_passed_on_as_it_is() -> None:
    fields = b"\r\nServer: nginx\r\nContent-Type: text/plain"
    assert http1.response_fields(fields, RID) == (fields, None, False, None, None)


def test_names_match_whole_and_in_any_case() -> None:
    fields = b"\r\nCONTENT-LENGTH: 5\r\nContent-Length-Extra: 1\r\nte\t: trailers\r\nTEX: 1"
    kept, length, *_ = http1.response_fields(fields, RID)
    assert kept == b"\r\nContent-Length-Extra: 1\r\nTEX: 1"
    assert length == b"5"


_NAMES = st.sampled_from(
    [*http1.HOP_BY_HOP, RID, b"server", b"etag", b"content-type", b"x-request", b"tex", b"connections"]
)


@st.composite
def _field_blocks(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        name = draw(_NAMES)
        name = bytes(c ^ 0x20 if draw(st.booleans()) and 97 <= c <= 122 else c for c in name)
        before = draw(st.sampled_from([b"", b" ", b"\t", b"  "]))
        after = draw(st.sampled_from([b"", b" ", b"\t "]))
        value = draw(st.binary(max_size=12).map(lambda b: b.replace(b"\r\n", b"")))
        value = draw(st.sampled_from([value, b"keep-alive", b"close", b"Upgrade", b" 12 ", b"x, y"]))
        sep = draw(st.sampled_from([b":", b":", b":", b""]))
        lines.append(b"\r\n" + name + before + sep + after + value)
    return b"".join(lines)


@pytest.mark.skipif(
    response_fields_c is None, reason="the compiled gateway modules are not in use in this run"
)
@given(_field_blocks())
def test_the_compiled_twin_answers_as_the_python_function(fields: bytes) -> None:
    assert response_fields_c is not None
    assert response_fields_c(fields, RID) == response_fields_py(fields, RID)


@pytest.mark.skipif(
    response_fields_c is None, reason="the compiled gateway modules are not in use in this run"
)
@given(st.binary(max_size=200))
def test_the_twins_agree_on_arbitrary_bytes(fields: bytes) -> None:
    assert response_fields_c is not None
    assert response_fields_c(fields, RID) == response_fields_py(fields, RID)


@pytest.mark.skipif(_http1c is None, reason=NOT_COMPILED)
@given(st.lists(st.binary(max_size=40), max_size=12), st.booleans())
def test_the_compiled_join_is_bytes_join(pieces: list[bytes], as_tuple: bool) -> None:
    assert _http1c is not None
    given_pieces = tuple(pieces) if as_tuple else pieces
    assert _http1c.join(given_pieces) == http1.join_bytes_py(given_pieces)


@pytest.mark.skipif(_http1c is None, reason=NOT_COMPILED)
def test_the_compiled_join_hands_anything_but_bytes_to_bytes_join() -> None:
    assert _http1c is not None
    assert _http1c.join([b"a", bytearray(b"b"), memoryview(b"c")]) == b"abc"
    with pytest.raises(TypeError):
        _http1c.join([b"a", "b"])


@pytest.mark.skipif(_http1c is None, reason=NOT_COMPILED)
@given(st.binary(min_size=1, max_size=16), st.integers(min_value=0, max_value=2**64 - 1))
def test_the_compiled_request_id_formats_as_the_python_one(prefix: bytes, n: int) -> None:
    assert _http1c is not None
    assert _http1c.request_id(prefix, n) == http1.request_id_py(prefix, n)


def test_request_ids_are_the_prefix_a_dash_and_the_counter_in_hex() -> None:
    ids = http1.RequestIds(b"ab12cd34")
    assert [ids.new(), ids.new()] == [b"ab12cd34-1", b"ab12cd34-2"]
    assert http1.request_id(b"p", 255) == b"p-ff"
