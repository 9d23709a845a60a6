"""What the zygote parent preloads for the test app: records the pid that warmed it."""

from __future__ import annotations

import os
import threading
import time

warmed_by: int | None = None


def warmup() -> None:
    global warmed_by
    warmed_by = os.getpid()


def warmup_with_thread() -> None:
    """Leaves a thread running in the parent: forking must be refused."""
    warmup()
    threading.Thread(target=lambda: time.sleep(3600), name="left-running", daemon=True).start()


def warmup_fails() -> None:
    raise RuntimeError("the model file is missing")
