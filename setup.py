"""Optional compiled gateway hot path.

The gateway's per-request modules are plain Python; where Cython and a C compiler are at
hand they are also compiled (typed by the `.pxd` file beside each module). A failed or
impossible build is not an error: the package then runs the same modules as Python.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

from setuptools import setup
from setuptools.command.build_ext import build_ext


def _hotpath() -> ModuleType:
    """gs_engine/gateway/hotpath.py (stdlib only), loaded from its file: the package is not installed yet."""
    path = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "src", "gs_engine", "gateway", "hotpath.py"
    )
    spec = importlib.util.spec_from_file_location("_gse_hotpath", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOTPATH = _hotpath()


class OptionalBuildExt(build_ext):
    """Build all the hot-path extensions or none: they cimport each other."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any failure means "use the Python modules"
            self._give_up(exc)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._give_up(exc)
            raise

    gave_up = False

    def _give_up(self, exc: BaseException) -> None:
        for ext in self.extensions:
            path = self.get_ext_fullpath(ext.name)
            if os.path.exists(path):
                os.remove(path)
        if self.gave_up:
            return
        self.gave_up = True
        print(
            f"gs-engine: the gateway hot path was not compiled ({exc}); the pure-Python gateway is used. "
            "Install a C compiler and the Python headers (apt-get install gcc python3-dev) for the fast one.",
            file=sys.stderr,
        )


def extensions() -> list:  # type: ignore[type-arg]
    if os.environ.get("GSE_NO_COMPILE"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("gs-engine: Cython is not installed; the pure-Python gateway is used.", file=sys.stderr)
        return []
    sources = [f"src/gs_engine/gateway/{name}.py" for name in HOTPATH.HOT_PATH]
    sources += [f"src/gs_engine/gateway/{name}.pyx" for name in HOTPATH.COMPILED_ONLY]
    return cythonize(
        sources,
        build_dir="build/cython",
        compiler_directives={"language_level": 3, "annotation_typing": False},
        quiet=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
