"""Which copy of the gateway's per-request modules is imported: compiled or Python source.

`setup.py` compiles the modules in HOT_PATH with Cython where it can; Python then prefers
the compiled file. The source copy is imported instead when GSE_GATEWAY_PURE=1 is set, or
when a compiled file is older than its source (edited since the last build), so a stale
build never runs. `install` must run before any of these modules is imported; the package's
`__init__` does that.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

PACKAGE = "gs_engine.gateway"
HOT_PATH = ("stats", "balancer", "limits", "outliers", "routes", "upstream", "proxy")
# compiled twins of Python functions (`_http1c.pyx` for `http1.response_fields_py`)
COMPILED_ONLY = ("_http1c",)
_DIR = Path(__file__).resolve().parent


def compiled_file(name: str, directory: Path = _DIR) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = directory / f"{name}{suffix}"
        if path.exists():
            return path
    return None


def stale_build(directory: Path = _DIR) -> str:
    """What is missing or out of date in the compiled copies ("" when all are current)."""
    for name in HOT_PATH + COMPILED_ONLY:
        built = compiled_file(name, directory)
        if built is None:
            return f"{name} is not compiled"
        for source in (directory / f"{name}.py", directory / f"{name}.pxd", directory / f"{name}.pyx"):
            if source.exists() and built.stat().st_mtime < source.stat().st_mtime:
                return f"{built.name} is older than {source.name} (rebuild: scripts/bootstrap.sh)"
    return ""


def _use_source() -> str:
    """Why the Python sources must be used ("" when the compiled files may be)."""
    if os.environ.get("GSE_GATEWAY_PURE", "") not in ("", "0"):
        return "GSE_GATEWAY_PURE is set"
    return stale_build()


class _SourceFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != PACKAGE:
            return None
        if name in COMPILED_ONLY:
            raise ModuleNotFoundError(f"{fullname} is not used: {REASON}", name=fullname)
        if name not in HOT_PATH:
            return None
        return importlib.util.spec_from_file_location(fullname, _DIR / f"{name}.py")


REASON = ""


def install() -> None:
    """Put the source finder in front when the compiled files must not be used."""
    global REASON
    REASON = _use_source()
    if REASON and not any(isinstance(f, _SourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFinder())


def describe() -> str:
    """ "compiled" or "python (why)", for logs and benchmark reports."""
    module = sys.modules.get(f"{PACKAGE}.proxy")
    loader = getattr(getattr(module, "__spec__", None), "loader", None)
    if isinstance(loader, importlib.machinery.ExtensionFileLoader):
        return "compiled"
    return f"python ({REASON or 'not compiled'})"
