"""One typed settings object for the whole of mlwarden.

Every value can be set by an environment variable ``MLWARDEN_<NAME>`` (for example
``MLWARDEN_DATABASE_URL``) or passed explicitly, which tests do.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def cores() -> int:
    """The cores this process may run on (its CPU affinity, where the system says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Settings(BaseSettings):
    """Typed configuration of the server, the store, the gateway and the agent."""

    model_config = SettingsConfigDict(env_prefix="MLWARDEN_", extra="ignore")

    # where SQLite, datasets and the spill journal live; PostgreSQL by URL instead of SQLite
    data_dir: Path = Path("./mlwarden-data")
    database_url: str | None = None

    host: str = "127.0.0.1"
    port: int = 8000
    # tokens required? None means: only when the server does not bind to loopback
    auth: bool | None = None
    # a token created with the admin role at start, when set
    bootstrap_admin_token: str | None = None
    # While tokens are required, /metrics and the API description (/openapi.json, /docs,
    # /redoc) need a viewer token too, unless opened here: metrics name every model and its
    # health, and the description maps every endpoint. Prometheus sends a token with
    # `authorization: {credentials: <token>}` in its scrape config.
    metrics_public: bool = False
    docs_public: bool = False

    max_request_bytes: int = 10 * 1024 * 1024
    max_batch_instances: int = 10_000
    predict_timeout_ms: float = 2_000.0

    # the record writer stores at most write_batch_size records a transaction, at least every
    # write_flush_interval_s: its Python work per batch holds the GIL the event loop needs, so
    # small and frequent batches keep the gateway's p99 and its queue's memory low
    # (docs/benchmarks.md, "The record writer beside a busy event loop")
    write_batch_size: int = 512
    write_flush_interval_s: float = 0.1
    write_queue_limit: int = 1_000_000
    # durable capture: a prediction is answered only once its record is fsync'd to the capture
    # log (group commit), so a killed server loses no answered prediction; off by default, a
    # kill then loses the records of the last flush interval (docs/benchmarks.md has the cost)
    durable_capture: bool = False

    # a token checked valid is trusted this long before the database is asked again; when the
    # database cannot be reached, a token checked valid less than token_outage_grace_s ago stays
    # valid (serving goes on through an outage) and one never seen valid is refused
    token_cache_ttl_s: float = 10.0
    token_outage_grace_s: float = 3_600.0
    # On PostgreSQL every replica is told of each change of a model, deployment or token
    # (LISTEN/NOTIFY) and drops its cached copy at once; a cached deployment or token is then
    # read again after this long anyway, as a safety net. While notifications are not being
    # received (SQLite, or the listening connection lost), deployments are read again every
    # second and tokens every token_cache_ttl_s, as before.
    notified_cache_s: float = 60.0

    # raw records older than this many days are deleted; windows, signals and findings stay
    record_retention_days: int | None = None

    # the agent: its policy file (the bundled default when unset), the pause between passes,
    # and whether the server process runs it (`mlwarden serve` turns it on unless --no-agent)
    agent_policy: Path | None = None
    agent_interval_s: float = 5.0
    agent_in_server: bool = False
    # a process that lives as long as its server (`mlwarden serve` turns it on) keeps what its
    # start left out of every later garbage collection (mlwarden.heap); off for
    # apps built in a process that outlives them (tests), where each start's collection costs
    gc_freeze: bool = False
    # the dashboard diagnoses open incidents as their windows close (after each pass of the
    # agent in the server, and every agent_interval_s), so their pages do not wait for it
    warm_diagnoses: bool = True
    # ... and makes them in a process of its own, so a page answered meanwhile does not share
    # the interpreter with one (False: in the server's threads; an in-memory SQLite store
    # always does)
    diagnosis_process: bool = True
    # On PostgreSQL, the server ends the session of a leader whose host stopped answering after
    # about this long (TCP keepalives on the lock's connection), which frees the leadership for
    # another replica; a leader process that dies frees it at once.
    leader_lock_timeout_s: float = 10.0
    # signs every alert webhook (header X-Mlwarden-Signature, HMAC-SHA256): set it, and check
    # it in the receiver with mlwarden.agent.remedies.alert.verify_signature
    webhook_secret: SecretStr | None = None
    # the integration key of a PagerDuty service, for policies with alert.format pagerduty
    pagerduty_routing_key: SecretStr | None = None
    # how often an open dashboard page asks the server what changed (its numbers, charts,
    # an investigation's progress); every open page of every viewer asks this often
    ui_refresh_s: float = Field(default=5.0, ge=0.2, le=3_600.0)
    # a folder of the user's own playbooks (YAML), besides the bundled ones
    playbooks_dir: Path | None = None

    # The agent's pass over the fleet: how many worker processes close the models' windows
    # (read the records, run the detectors: most of a pass's CPU) while the agent itself stores
    # them, decides and acts, as with one process (agent.workers). 1 closes them in the agent's
    # own process. Default: the cores this process may run on.
    agent_workers: int = Field(default_factory=cores, ge=1, le=256)

    # monitoring: records per window, and records learned as reference when a version has none
    window_size: int = 1_000
    reference_size: int = 1_000
    # a window only takes records received at least this long ago: the record writer stamps
    # arrival when it queues a record and stores it up to a flush interval later, and a window
    # that closed before such a record landed would never see it (at least two flush
    # intervals are waited whatever this says; 0 turns the wait off, for synchronous writers)
    window_settle_s: float = 2.0

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
