"""A replica's environment and command: Kubernetes-style `$(VAR)` expansion, scrubbing the engine's
own settings, PATH with the engine's interpreter first, and finding the executable. Pure."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes-style expansion: `$(VAR)` becomes VAR's value when VAR is set, else stays as
    written; `$$` is a literal `$` (so `$$(VAR)` stays `$(VAR)`)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "$" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                close = text.find(")", i + 2)
                if close != -1:
                    name = text[i + 2 : close]
                    out.append(env[name] if name in env else text[i : close + 1])
                    i = close + 1
                    continue
        out.append(char)
        i += 1
    return "".join(out)


def scrub_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The engine's environment without its own GSE_* settings (tokens, database URLs)."""
    return {key: value for key, value in environ.items() if not key.startswith("GSE_")}


def reserved_env_name(name: str) -> bool:
    return name == "PORT" or name.startswith("GSE_")


def build_environment(
    base: Mapping[str, str],
    engine_vars: Mapping[str, str],
    container_env: Iterable[Mapping[str, Any]],
    python_dir: str,
    *,
    serves_port: bool = True,
) -> dict[str, str]:
    """A container's environment: scrubbed `base`, PATH with `python_dir` first, the runtime's own
    variables, then the container's `env` entries in order (each may use `$(VAR)` of earlier ones)."""
    env = scrub_environment(base)
    env.pop("PORT", None)
    env["PATH"] = os.pathsep.join(p for p in (python_dir, env.get("PATH") or os.defpath) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")  # logs appear as they are written
    env.update(engine_vars)
    for item in container_env:
        name = str(item.get("name") or "")
        if not name or reserved_env_name(name):
            continue
        value = item.get("value")
        env[name] = expand_vars("" if value is None else str(value), env)
    if not serves_port:
        env.pop("PORT", None)
    return env


def resolve_executable(name: str, path: str | None, cwd: Path | None) -> str | None:
    """The file a command runs: a PATH lookup for a bare name, else the path (relative to `cwd`)."""
    if os.sep in name:
        candidate = Path(name).expanduser()
        if not candidate.is_absolute() and cwd is not None:
            candidate = cwd / candidate
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        return None
    return shutil.which(name, path=path)
