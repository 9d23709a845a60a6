# Sourced by scripts/demo and scripts/test: make .venv with the project and its dev dependencies.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON_BIN="${PYTHON:-}"
if [ -z "$PYTHON_BIN" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PYTHON_BIN="$candidate"; break
    fi
  done
fi
if [ -z "$PYTHON_BIN" ]; then
  echo "GS-Engine needs Python 3.11 or newer (apt-get install python3)" >&2; exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON_BIN" -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing python3-venv (Debian splits venv out of python3)" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$PYTHON_BIN" -m venv "$VENV"
    else
      echo "'$PYTHON_BIN -m venv' failed: install python3-venv (sudo apt-get install python3-venv)" >&2; exit 1
    fi
  fi
fi

STAMP="$VENV/.gse-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  echo "installing GS-Engine and its dependencies into .venv" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[dev]"
  touch "$STAMP"
fi

# The gateway's compiled hot path (optional: without it the same modules run as Python).
# Rebuilt when a source is newer than its build; needs a C compiler and the Python headers.
if "$VENV/bin/python" -c 'import sys; from gs_engine.gateway import hotpath; sys.exit(not hotpath.stale_build())'; then
  include_dir="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  if { ! command -v cc >/dev/null 2>&1 || [ ! -f "$include_dir/Python.h" ]; } \
      && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing gcc and the Python headers for the compiled gateway" >&2
    py_dev="python$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-dev"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc "$py_dev" >/dev/null || true
  fi
  if command -v cc >/dev/null 2>&1; then
    echo "compiling the gateway hot path" >&2
    (cd "$ROOT" && "$VENV/bin/python" setup.py -q build_ext --inplace >/dev/null) || true
  fi
fi
export PATH="$VENV/bin:$PATH"
