"""The hotline's own SQLite file (``Settings.db_path``): the tables the hotline keeps beside the shop
stores — agent accounts, callbacks — each created when missing. Blocking: call from a worker thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class HotlineTable:
    """One table (``schema``: its ``CREATE TABLE IF NOT EXISTS``) in the SQLite file at ``path``."""

    def __init__(self, path: Path | str, schema: str) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as conn:
            conn.execute(schema)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """A connection whose ``with`` block is one transaction (committed, or rolled back on error)."""
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            with conn:
                yield conn
        finally:
            conn.close()
