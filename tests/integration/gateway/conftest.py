from collections.abc import Iterator

import pytest

from .harness import Backend, GatewayRunner


@pytest.fixture
def backend() -> Iterator[Backend]:
    b = Backend("b1").start()
    yield b
    b.stop()


@pytest.fixture
def gateway() -> Iterator[GatewayRunner]:
    g = GatewayRunner()
    yield g
    g.stop()
