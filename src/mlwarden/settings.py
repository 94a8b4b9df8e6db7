"""One typed settings object for the whole of mlwarden.

Every value can be set by an environment variable ``MLWARDEN_<NAME>`` (for example
``MLWARDEN_DATABASE_URL``) or passed explicitly, which tests do.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Typed configuration of the server, the store, the gateway and the agent."""

    model_config = SettingsConfigDict(env_prefix="MLWARDEN_", extra="ignore")

    data_dir: Path = Field(default=Path("./mlwarden-data"), description="Where SQLite, artifacts and journals live.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; SQLite in data_dir when unset.")

    host: str = "127.0.0.1"
    port: int = 8000
    auth: bool | None = Field(default=None, description="Require tokens; None means: only when not bound to loopback.")
    bootstrap_admin_token: str | None = Field(default=None, description="Token created as admin on start when set.")

    max_request_bytes: int = 10 * 1024 * 1024
    max_batch_instances: int = 10_000
    predict_timeout_ms: float = 2_000.0

    write_batch_size: int = 2_000
    write_flush_interval_s: float = 0.5
    write_queue_limit: int = 1_000_000

    record_retention_days: int | None = Field(default=None, description="Raw records older than this are deleted; aggregates stay.")

    window_size: int = 1_000
    reference_size: int = 1_000

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'mlwarden.db').resolve()}"

    @property
    def journal_dir(self) -> Path:
        """Folder of the append-only spill journal used while the database is unreachable."""
        return self.data_dir / "journal"

    def requires_auth(self) -> bool:
        """Tokens are required unless explicitly disabled, and then only on loopback."""
        if self.auth is not None:
            return self.auth or not is_loopback(self.host)
        return not is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    return host in {"127.0.0.1", "localhost", "::1"} or host.startswith("127.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings read from the environment."""
    return Settings()
