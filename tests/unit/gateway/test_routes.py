import pytest

from gs_engine.errors import Conflict, InvalidInput
from gs_engine.gateway import Endpoint, RouteConfig, RouteTable


def route(name: str, prefix: str, host: str | None = None, strip: bool = True) -> RouteConfig:
    ns, svc = name.split("/")
    return RouteConfig(name, ns, svc, prefix, host=host, strip_prefix=strip)


def names(table: RouteTable, host: bytes | None, path: bytes) -> tuple[str, bytes] | None:
    m = table.match(host, path)
    return None if m is None else (m[0].config.name, m[1])


def test_prefix_is_stripped_and_query_kept() -> None:
    t = RouteTable.build([route("default/digits", "/default/digits")])
    assert names(t, b"x", b"/default/digits/predict?a=1") == ("default/digits", b"/predict?a=1")


def test_exact_prefix_strips_to_root() -> None:
    t = RouteTable.build([route("default/digits", "/default/digits")])
    assert names(t, None, b"/default/digits") == ("default/digits", b"/")
    assert names(t, None, b"/default/digits/") == ("default/digits", b"/")
    assert names(t, None, b"/default/digits?q") == ("default/digits", b"/?q")


def test_segment_boundary() -> None:
    t = RouteTable.build([route("a/b", "/a/b")])
    assert names(t, None, b"/a/bc") is None
    assert names(t, None, b"/a/bc/d") is None
    assert names(t, None, b"/a") is None
    assert names(t, None, b"/a/b/c") == ("a/b", b"/c")


def test_longest_prefix_wins() -> None:
    t = RouteTable.build([route("a/x", "/a"), route("a/b", "/a/b"), route("a/c", "/a/b/c")])
    assert names(t, None, b"/a/b/c/d") == ("a/c", b"/d")
    assert names(t, None, b"/a/b/cd") == ("a/b", b"/cd")
    assert names(t, None, b"/a/z") == ("a/x", b"/z")


def test_root_route_catches_the_rest() -> None:
    t = RouteTable.build([route("d/root", "/"), route("a/b", "/a/b")])
    assert names(t, None, b"/elsewhere/x") == ("d/root", b"/elsewhere/x")
    assert names(t, None, b"/a/b/x") == ("a/b", b"/x")


def test_no_strip_keeps_the_target() -> None:
    t = RouteTable.build([route("a/b", "/a/b", strip=False)])
    assert names(t, None, b"/a/b/x?y") == ("a/b", b"/a/b/x?y")


def test_host_routes_before_any_host_routes() -> None:
    t = RouteTable.build([route("any/long", "/api/v1"), route("h/short", "/api", host="Digits.Example.com")])
    # the host route wins even though the any-host prefix is longer
    assert names(t, b"digits.example.com:8080", b"/api/v1/x") == ("h/short", b"/v1/x")
    assert names(t, b"DIGITS.example.COM", b"/api/v1/x") == ("h/short", b"/v1/x")
    assert names(t, b"other.example.com", b"/api/v1/x") == ("any/long", b"/x")
    assert names(t, None, b"/api/v1/x") == ("any/long", b"/x")
    # a host with no matching prefix falls back to any-host routes
    assert names(t, b"digits.example.com", b"/nothing") is None


def test_ipv6_host_port_is_ignored() -> None:
    t = RouteTable.build([route("h/v6", "/", host="[::1]")])
    assert names(t, b"[::1]:8080", b"/x") == ("h/v6", b"/x")


def test_duplicate_prefix_is_a_conflict_naming_both() -> None:
    with pytest.raises(Conflict) as err:
        RouteTable.build([route("a/one", "/same"), route("a/two", "/same/")])
    assert "a/one" in str(err.value) and "a/two" in str(err.value)
    # the same prefix on different hosts is fine
    RouteTable.build([route("a/one", "/same", host="a"), route("a/two", "/same", host="b")])


def test_bad_prefix_names_the_field() -> None:
    with pytest.raises(InvalidInput) as err:
        RouteTable.build([route("a/b", "no-slash")])
    assert err.value.field == "path_prefix"
    assert err.value.fix


def test_bad_port_is_refused() -> None:
    cfg = RouteConfig("a/b", "a", "b", "/a/b", endpoints=(Endpoint("e", "127.0.0.1", 0),))
    with pytest.raises(InvalidInput):
        RouteTable.build([cfg])


def test_tables_are_independent_values() -> None:
    old = RouteTable.build([route("a/b", "/a/b")])
    new = RouteTable.build([route("a/c", "/a/c")])
    assert names(old, None, b"/a/b/x") == ("a/b", b"/x")
    assert names(old, None, b"/a/c/x") is None
    assert names(new, None, b"/a/c/x") == ("a/c", b"/x")
    assert names(new, None, b"/a/b/x") is None
    assert [r.index for r in new.routes] == [0]


def test_empty_table_matches_nothing() -> None:
    assert RouteTable.build([]).match(b"h", b"/") is None


def test_repeated_matches_agree_with_the_first_whatever_the_host_and_query() -> None:
    t = RouteTable.build(
        [route("a/any", "/a"), route("a/host", "/a", host="h.example"), route("b/keep", "/b", strip=False)]
    )
    for _ in range(3):  # the first call fills the table's memory of matches, the others read it
        assert names(t, b"h.example", b"/a/x?q=1") == ("a/host", b"/x?q=1")
        assert names(t, b"other", b"/a/x?q=2") == ("a/any", b"/x?q=2")
        assert names(t, None, b"/a/x") == ("a/any", b"/x")
        assert names(t, b"H.EXAMPLE:8080", b"/a/x") == ("a/host", b"/x")
        assert names(t, None, b"/b/y?z") == ("b/keep", b"/b/y?z")
        assert names(t, None, b"/c") is None


def test_many_distinct_paths_keep_matching_correctly() -> None:
    from gs_engine.gateway.routes import CACHE_ENTRIES

    t = RouteTable.build([route("a/b", "/a/b")])
    for i in range(CACHE_ENTRIES * 2 + 3):
        assert names(t, None, b"/a/b/%d" % i) == ("a/b", b"/%d" % i)
        assert names(t, None, b"/z/%d" % i) is None
    long_path = b"/a/b/" + b"x" * 2000
    assert names(t, None, long_path) == ("a/b", b"/" + b"x" * 2000)
