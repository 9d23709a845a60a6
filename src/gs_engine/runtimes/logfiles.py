"""Replica log files: bounded by copy-and-truncate rotation (one old file kept), read from the end."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path


def last_line(path: Path, window: int = 4096) -> str:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - window))
            tail = handle.read()
    except OSError:
        return ""
    for line in reversed(tail.decode("utf-8", "replace").splitlines()):
        if line.strip():
            return line.strip()[:300]
    return ""


def rotate_if_large(path: Path, max_bytes: int) -> None:
    try:
        if path.stat().st_size <= max_bytes:
            return
        shutil.copyfile(path, path.with_name(path.name + ".1"))
        os.truncate(path, 0)
    except OSError:
        return


def read_logs(paths: Sequence[Path], tail_lines: int | None) -> str:
    chunks: list[str] = []
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            chunks.append(path.read_bytes().decode("utf-8", "replace"))
    text = "".join(chunks)
    if tail_lines is None:
        return text
    if tail_lines <= 0:
        return ""
    lines = text.splitlines(keepends=True)
    return "".join(lines[-tail_lines:])
