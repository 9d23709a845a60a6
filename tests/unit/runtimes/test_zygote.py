"""Pure parts of the zygote: which commands can be forked, the socket protocol, the spec checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gs_engine.errors import SpecInvalid, Unsupported
from gs_engine.runtimes.process import ProcessRuntime, zygote_settings
from gs_engine.runtimes.zygote import (
    PROTOCOL_MAX_LINE,
    ChildExited,
    Forked,
    ForkFailed,
    ForkRequest,
    NotAPythonEntry,
    ProtocolError,
    PythonEntry,
    ZygoteConfig,
    decode,
    encode,
    is_python,
    python_entry,
)
from gs_engine.spec.loader import load_service

# -- commands -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["python", "server.py"], PythonEntry("script", "server.py")),
        (
            ["python3", "app/main.py", "--port", "$(PORT)"],
            PythonEntry("script", "app/main.py", ("--port", "$(PORT)")),
        ),
        (["python3.12", "s.py"], PythonEntry("script", "s.py")),
        ([sys.executable, "s.py", "-v"], PythonEntry("script", "s.py", ("-v",))),
        (["python", "-m", "http.server", "8000"], PythonEntry("module", "http.server", ("8000",))),
        (["/usr/bin/python3", "s.py"], PythonEntry("script", "s.py")),
    ],
)
def test_python_entry_parses_scripts_and_modules(argv: list[str], expected: PythonEntry) -> None:
    assert python_entry(argv) == expected


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ([], "no command"),
        (["node", "server.js"], "'node', not python"),
        (["pythonista", "x.py"], "not python"),
        (["python"], "interactive"),
        (["python", "-c", "print(1)"], "'-c'"),
        (["python", "-u", "server.py"], "'-u'"),
        (["python", "-m"], "module name"),
        (["python", "-m", "-x"], "module name"),
    ],
)
def test_python_entry_refuses_other_commands_with_the_reason(argv: list[str], words: str) -> None:
    with pytest.raises(NotAPythonEntry, match=words):
        python_entry(argv)


def test_is_python_by_name_and_by_this_interpreter() -> None:
    assert is_python("python") and is_python("python3") and is_python("python3.11")
    assert is_python("/opt/bin/python3")
    assert is_python("/some/venv/bin/interp", this_interpreter="/some/venv/bin/interp")
    assert not is_python("python3.x") and not is_python("ipython") and not is_python("./python-wrapper")


def test_entry_argv_is_what_sys_argv_becomes() -> None:
    assert PythonEntry("script", "server.py", ("--a", "1")).argv == ["server.py", "--a", "1"]


# -- the protocol ---------------------------------------------------------------------------------

MESSAGES = [
    ForkRequest(
        7,
        "default.digits.ab12",
        PythonEntry("script", "server.py", ("--x",)),
        {"PORT": "8001", "GSE_REPLICA_ID": "default.digits.ab12"},
        "/var/lib/gse/default.digits.ab12/digits.log",
        "/srv/digits",
    ),
    ForkRequest(8, "r", PythonEntry("module", "pkg.app"), {}, "/l", None),
    Forked(7, 4242),
    ForkFailed(7, "the zygote runs 2 threads"),
    ChildExited(4242, 3, None),
    ChildExited(4243, None, 9),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_each_message_round_trips_as_one_line(message: Any) -> None:
    line = encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode(line) == message


@given(
    env=st.dictionaries(st.text(min_size=1), st.text()),
    args=st.lists(st.text()),
    request_id=st.integers(min_value=0, max_value=2**53),
)
def test_fork_request_round_trips_any_text(env: dict[str, str], args: list[str], request_id: int) -> None:
    message = ForkRequest(request_id, "r", PythonEntry("script", "s.py", tuple(args)), env, "/log")
    line = encode(message)
    assert line.count(b"\n") == 1  # newlines inside values are escaped: one message per line
    assert decode(line) == message


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"not json\n", "not JSON"),
        (b"[1, 2]\n", "JSON object"),
        (b'{"op": "launch"}\n', "unknown op"),
        (b'{"op": "forked", "id": 1}\n', "'pid'"),
        (b'{"op": "forked", "id": true, "pid": 3}\n', "'id'"),
        (b'{"op": "forked", "id": "1", "pid": 3}\n', "'id'"),
        (b'{"op": "exited", "pid": 3, "code": "0"}\n', "'code'"),
        (
            b'{"op": "fork", "id": 1, "replica": "r", "kind": "shell", "target": "x", "args": [], "env": {}, '
            b'"log": "/l"}\n',
            "kind",
        ),
        (
            b'{"op": "fork", "id": 1, "replica": "r", "kind": "script", "target": "x", "args": [1], '
            b'"env": {}, "log": "/l"}\n',
            "args",
        ),
        (
            b'{"op": "fork", "id": 1, "replica": "r", "kind": "script", "target": "x", "args": [], '
            b'"env": {"A": 1}, "log": "/l"}\n',
            "env",
        ),
        (b"\xff\xfe\n", "not JSON"),
    ],
)
def test_decode_refuses_what_is_not_a_message(line: bytes, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        decode(line)


def test_decode_refuses_an_over_long_line() -> None:
    with pytest.raises(ProtocolError, match="limit"):
        decode(b" " * (PROTOCOL_MAX_LINE + 1))


def test_exit_code_follows_the_subprocess_convention() -> None:
    assert ChildExited(1, 0).exit_code == 0
    assert ChildExited(1, 3).exit_code == 3
    assert ChildExited(1, None, 15).exit_code == -15


def test_wire_names_are_the_documented_ones() -> None:
    doc = json.loads(encode(ChildExited(5, None, 9)))
    assert doc == {"op": "exited", "pid": 5, "code": None, "signal": 9}


# -- configs --------------------------------------------------------------------------------------


def config(**changes: Any) -> ZygoteConfig:
    base: dict[str, Any] = {
        "namespace": "default",
        "service": "digits",
        "revision": "abc123",
        "python": sys.executable,
        "preload": ("numpy", "sklearn"),
        "warmup": "server:warmup",
        "sys_path": ("/srv/digits",),
        "cwd": "/srv/digits",
        "env": {"HOME": "/root"},
        "script": "/srv/digits/server.py",
    }
    base.update(changes)
    return ZygoteConfig(**base)


def test_parent_argv_carries_every_setting() -> None:
    argv = config().argv(Path("/run/z.sock"))
    assert argv[:3] == [sys.executable, "-m", "gs_engine.runtimes.zygote_main"]
    flags = list(zip(argv[3::2], argv[4::2], strict=True))
    assert flags == [
        ("--socket", "/run/z.sock"),
        ("--preload", "numpy"),
        ("--preload", "sklearn"),
        ("--path", "/srv/digits"),
        ("--warmup", "server:warmup"),
        ("--script", "/srv/digits/server.py"),
    ]


def test_fingerprint_changes_with_what_the_parent_holds() -> None:
    assert config().fingerprint == config().fingerprint
    for change in (
        {"revision": "def456"},
        {"preload": ("numpy",)},
        {"warmup": None},
        {"env": {"HOME": "/other"}},
        {"cwd": "/elsewhere"},
    ):
        assert config(**change).fingerprint != config().fingerprint, change


# -- spec checks ----------------------------------------------------------------------------------


def doc(command: list[str], zygote: Any = True) -> dict[str, Any]:
    return {
        "service": {
            "name": "digits",
            "namespace": "default",
            "containers": [{"name": "main", "image": None, "command": command, "args": [], "env": []}],
            "prewarm": {"minWarm": 0, "zygote": zygote},
        }
    }


@pytest.fixture
def runtime(tmp_path: Path) -> ProcessRuntime:
    return ProcessRuntime(tmp_path)


@pytest.mark.parametrize(
    ("command", "words"),
    [
        (["python", "-c", "print(1)"], "'-c'"),
        (["sh", "-c", "python server.py"], "runs 'sh', not python"),
    ],
)
def test_check_spec_refuses_zygote_for_other_commands(
    runtime: ProcessRuntime, command: list[str], words: str
) -> None:
    with pytest.raises(Unsupported, match=words) as caught:
        runtime.check_spec(doc(command))
    assert caught.value.field == "service.prewarm.zygote"
    assert "python SCRIPT" in caught.value.fix


def test_check_spec_accepts_zygote_for_scripts_and_modules(runtime: ProcessRuntime) -> None:
    runtime.check_spec(doc(["python", "server.py"], {"preload": ["json"]}))
    runtime.check_spec(doc(["python", "-m", "http.server"]))
    runtime.check_spec(doc(["python", "-c", "print(1)"], zygote=None))  # no zygote: anything goes


def test_zygote_settings_reads_the_normalized_document() -> None:
    assert zygote_settings(doc(["python", "s.py"], {"preload": ["numpy"]})) == {"preload": ["numpy"]}
    assert zygote_settings(doc(["python", "s.py"], True)) == {}
    assert zygote_settings(doc(["python", "s.py"], None)) is None
    assert zygote_settings({"service": {"name": "x", "containers": []}}) is None


# -- the schema -----------------------------------------------------------------------------------


def service_yaml(zygote: str) -> str:
    return (
        "service:\n  name: digits\n  containers:\n    - command: [python, server.py]\n"
        f"  prewarm:\n    zygote: {zygote}\n"
    )


def test_schema_keeps_preload_and_warmup() -> None:
    spec = load_service(service_yaml('{preload: [numpy, sklearn], warmup: "server:warmup"}'))
    assert spec.prewarm is not None and spec.prewarm.zygote is not None
    assert spec.prewarm.zygote.preload == ["numpy", "sklearn"]
    assert spec.prewarm.zygote.warmup == "server:warmup"
    body = spec.to_document()["service"]
    assert body["prewarm"]["zygote"] == {"preload": ["numpy", "sklearn"], "warmup": "server:warmup"}


@pytest.mark.parametrize(
    "hook", ["server", "server:", ":warmup", "ser ver:warmup", "server:warm-up", "a:b:c"]
)
def test_schema_refuses_a_warmup_that_is_not_module_colon_function(hook: str) -> None:
    with pytest.raises(SpecInvalid) as caught:
        load_service(service_yaml(f'{{warmup: "{hook}"}}'))
    (problem,) = caught.value.problems
    assert problem.path == "service.prewarm.zygote.warmup"
    assert "server:warmup" in problem.fix


def test_digits_zygote_document_is_the_plain_one_plus_prewarm() -> None:
    digits = Path(__file__).resolve().parents[3] / "examples" / "digits"
    plain = load_service((digits / "service.yaml").read_text()).to_document()["service"]
    zygote = load_service((digits / "service-zygote.yaml").read_text()).to_document()["service"]
    assert zygote.pop("prewarm")["zygote"] == {"preload": ["numpy", "sklearn"], "warmup": "server:warmup"}
    env = zygote["containers"][0].pop("env")
    assert {item["name"] for item in env} == {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}
    plain["containers"][0].pop("env", None)
    assert zygote == plain
