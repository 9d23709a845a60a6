"""Engine settings: every address and port from a flag or a GSE_* environment variable."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path


def default_home() -> Path:
    env = os.environ.get("GSE_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gs-engine"


@dataclass(frozen=True)
class Settings:
    home: Path
    api_host: str = "127.0.0.1"
    api_port: int = 7070
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    database_url: str = ""
    runtime: str = "process"
    replica_host: str = "127.0.0.1"
    reconcile_interval: float = 1.0

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'gse.db'}"

    @property
    def token_file(self) -> Path:
        return self.home / "admin.token"

    @property
    def replicas_dir(self) -> Path:
        return self.home / "replicas"

    @property
    def api_url(self) -> str:
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "") else self.api_host  # noqa: S104
        return f"http://{host}:{self.api_port}"

    @property
    def gateway_url(self) -> str:
        host = "127.0.0.1" if self.gateway_host in ("0.0.0.0", "") else self.gateway_host  # noqa: S104
        return f"http://{host}:{self.gateway_port}"

    def with_overrides(self, **overrides: object) -> Settings:
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **given)  # type: ignore[arg-type]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(
            f"{name}={raw!r} is not a port number; set it to an integer such as {default}"
        ) from exc


def load_settings() -> Settings:
    """Settings from the environment; flags override them with `with_overrides`."""
    return Settings(
        home=default_home(),
        api_host=os.environ.get("GSE_API_HOST", "127.0.0.1"),
        api_port=_env_int("GSE_API_PORT", 7070),
        gateway_host=os.environ.get("GSE_GATEWAY_HOST", "127.0.0.1"),
        gateway_port=_env_int("GSE_GATEWAY_PORT", 8080),
        database_url=os.environ.get("GSE_DATABASE_URL", ""),
        runtime=os.environ.get("GSE_RUNTIME", "process"),
        replica_host=os.environ.get("GSE_REPLICA_HOST", "127.0.0.1"),
    )
