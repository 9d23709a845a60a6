"""The gateway tests again, on the Python copy of the hot path (what runs where nothing compiled)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gs_engine.gateway import hotpath

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.timeout(300)
def test_the_gateway_suite_passes_on_the_python_modules() -> None:
    if hotpath.REASON:
        pytest.skip(f"this run already uses the Python gateway modules: {hotpath.REASON}")
    env = {**os.environ, "GSE_GATEWAY_PURE": "1"}
    suites = ["tests/unit/gateway", "tests/integration/gateway", "tests/fuzz"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suites],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
