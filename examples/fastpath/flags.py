"""The `fast_path` flag through OpenFeature, evaluated in-process from a flagd definition file.

openfeature-provider-flagd 0.6.x in FILE mode (in-process with an offline flag source) loads the
file at start and then re-reads it from a thread that wakes every `deadline_ms` (default 500 ms;
`FLAGD_DEADLINE_MS` also sets it; `offline_poll_interval_ms` is not used by that watcher) and
reloads when the file's mtime has grown. So a change to the file reaches evaluations one poll
later, at most: the service answers with the variant it evaluates now, never with the file's.
"""

from __future__ import annotations

from pathlib import Path

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType

from .flagctl import definition, write_flags

FLAG = "fast_path"
VARIANTS = ("legacy", "fast")
DEFAULT = "legacy"
DOMAIN = "fastpath"


def ensure_flag_file(path: Path) -> None:
    """A missing file is created with the flag on its default variant, so a first run just works."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_flags(path, definition(FLAG, {v: v for v in VARIANTS}, DEFAULT))


class FastPathFlag:
    """Owns the provider; `variant()` is one OpenFeature evaluation (tens of microseconds)."""

    def __init__(self, path: Path, poll_ms: int | None):
        self.path = path
        self.provider = FlagdProvider(
            resolver_type=ResolverType.FILE,
            offline_flag_source_path=str(path),
            deadline_ms=poll_ms,  # None: the provider's own default / FLAGD_DEADLINE_MS
        )
        self.client: OpenFeatureClient | None = None

    def start(self) -> None:
        # Waits for the first load; a missing or malformed file raises here, at startup.
        api.set_provider_and_wait(self.provider, domain=DOMAIN)
        self.client = api.get_client(DOMAIN)

    def stop(self) -> None:
        api.shutdown()

    def details(self) -> tuple[str, str]:
        """(variant in use, OpenFeature reason). An unknown value falls back to the default."""
        assert self.client is not None, "start() first"
        result = self.client.get_string_details(FLAG, DEFAULT)
        value = result.value if result.value in VARIANTS else DEFAULT
        return value, str(getattr(result.reason, "value", result.reason) or "")

    def provider_status(self) -> str:
        """READY, or ERROR while the file on disk cannot be parsed (the last good flags still serve)."""
        assert self.client is not None, "start() first"
        return str(self.client.get_provider_status().value)

    def variant(self) -> str:
        return self.details()[0]
