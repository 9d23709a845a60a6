"""Choosing between the compiled and the Python copy of the gateway's per-request modules."""

import importlib.machinery
import os
from pathlib import Path

from gs_engine.gateway import hotpath

SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _tree(tmp_path: Path, built_age: float) -> Path:
    """Sources for every hot-path module and a compiled file `built_age` seconds older."""
    for name in hotpath.HOT_PATH + hotpath.COMPILED_ONLY:
        source = tmp_path / f"{name}.py"
        source.write_text("")
        built = tmp_path / f"{name}{SUFFIX}"
        built.write_bytes(b"")
        stamp = source.stat().st_mtime - built_age
        os.utime(built, (stamp, stamp))
    return tmp_path


def test_a_build_newer_than_its_sources_is_used(tmp_path: Path) -> None:
    assert hotpath.stale_build(_tree(tmp_path, built_age=-10)) == ""


def test_a_missing_compiled_module_means_the_sources(tmp_path: Path) -> None:
    tree = _tree(tmp_path, built_age=-10)
    (tree / f"proxy{SUFFIX}").unlink()
    assert hotpath.stale_build(tree) == "proxy is not compiled"


def test_a_source_edited_after_the_build_means_the_sources(tmp_path: Path) -> None:
    tree = _tree(tmp_path, built_age=-10)
    edited = tree / "upstream.py"
    later = edited.stat().st_mtime + 60
    os.utime(edited, (later, later))
    assert "older than upstream.py" in hotpath.stale_build(tree)


def test_an_edited_type_declaration_file_also_means_a_rebuild(tmp_path: Path) -> None:
    tree = _tree(tmp_path, built_age=-10)
    declarations = tree / "stats.pxd"
    declarations.write_text("")
    later = declarations.stat().st_mtime + 60
    os.utime(declarations, (later, later))
    assert "older than stats.pxd" in hotpath.stale_build(tree)


def test_the_loaded_copy_matches_the_choice() -> None:
    from gs_engine.gateway import proxy  # noqa: F401 - imported for the check below

    described = hotpath.describe()
    if hotpath.REASON:
        assert described == f"python ({hotpath.REASON})"
    else:
        assert described == "compiled"


def test_the_python_gateway_does_not_import_the_compiled_twins() -> None:
    import subprocess
    import sys

    probe = "import gs_engine.gateway.http1 as h; print(h.response_fields is h.response_fields_py)"
    env = {**os.environ, "GSE_GATEWAY_PURE": "1"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
