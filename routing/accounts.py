"""Agent accounts: each human agent's password (scrypt hash) and how to reach them (SIP URI, phone).

Kept in the hotline's own database file (``Settings.db_path``, table ``agent_accounts``), beside
the shop stores, so a shop re-import never touches them. Which agents exist is the shop's business
(``ShopPort.agents()``); an account only adds sign-in and contact details to an agent id.

Passwords are hashed with scrypt (n=2**14, r=8, p=1, a 16-byte random salt), encoded with their
parameters as ``scrypt$n$r$p$salt_hex$hash_hex`` so stronger settings can come later, and compared
with ``hmac.compare_digest``. ``Lockout`` counts failed sign-ins per agent id in the live store, so
an id locked on one server is locked on all (time is an input).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.errors import ConfigError
from routing.hotline_db import HotlineTable
from routing.store import LiveStore

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
MIN_PASSWORD = 8
MAX_PASSWORD = 256
_MAXMEM = 64 * 1024 * 1024  # n=2**14, r=8 needs 16 MiB; allow stronger stored parameters up to this

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agent_accounts (
    agent_id TEXT PRIMARY KEY,
    password_hash TEXT,
    sip_uri TEXT,
    phone TEXT,
    updated_at TEXT NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class AgentContact:
    """How to reach an agent outside the desktop: a SIP URI to transfer calls to, a phone number."""

    sip_uri: str | None = None
    phone: str | None = None


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` for ``password`` with a fresh random salt."""
    check_password(password)
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def password_matches(password: str, encoded: str) -> bool:
    """Whether ``password`` hashes to ``encoded`` (False for anything malformed)."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        expected = bytes.fromhex(digest)
        if scheme != "scrypt" or len(expected) != HASH_BYTES:
            return False
        got = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got, expected)


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ConfigError(f"a password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters, got {len(password)}")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, size: int = HASH_BYTES) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=size)


# a hash of nothing anyone knows: verifying an unknown id costs the same time as a known one
_DUMMY = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${'00' * SALT_BYTES}${'00' * HASH_BYTES}"


class Accounts(HotlineTable):
    """The ``agent_accounts`` table in the SQLite file at ``path`` (created when missing).

    Blocking (SQLite, scrypt): call from a worker thread in a server.
    """

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, _SCHEMA)

    def set_password(self, agent_id: str, password: str) -> None:
        encoded = hash_password(password)
        with self._db() as conn:
            conn.execute(
                "INSERT INTO agent_accounts (agent_id, password_hash, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(agent_id) DO UPDATE SET password_hash = excluded.password_hash, "
                "updated_at = excluded.updated_at",
                (agent_id, encoded, _now()),
            )

    def verify(self, agent_id: str, password: str) -> bool:
        """Whether ``agent_id`` has a password and it is ``password`` (same cost either way)."""
        with self._db() as conn:
            row = conn.execute("SELECT password_hash FROM agent_accounts WHERE agent_id = ?", (agent_id,)).fetchone()
        encoded = row[0] if row is not None and row[0] else None
        matched = password_matches(password, encoded or _DUMMY)
        return matched and encoded is not None

    def has_password(self, agent_id: str) -> bool:
        with self._db() as conn:
            row = conn.execute("SELECT password_hash FROM agent_accounts WHERE agent_id = ?", (agent_id,)).fetchone()
        return row is not None and bool(row[0])

    def set_contact(self, agent_id: str, sip_uri: str | None = None, phone: str | None = None) -> AgentContact:
        """Set the given fields (None keeps a field as it is, "" clears it); returns the contact now held."""
        old = self.contact(agent_id)
        new = AgentContact(
            old.sip_uri if sip_uri is None else (sip_uri or None), old.phone if phone is None else (phone or None)
        )
        with self._db() as conn:
            conn.execute(
                "INSERT INTO agent_accounts (agent_id, sip_uri, phone, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(agent_id) DO UPDATE SET sip_uri = excluded.sip_uri, phone = excluded.phone, "
                "updated_at = excluded.updated_at",
                (agent_id, new.sip_uri, new.phone, _now()),
            )
        return new

    def contact(self, agent_id: str) -> AgentContact:
        with self._db() as conn:
            row = conn.execute("SELECT sip_uri, phone FROM agent_accounts WHERE agent_id = ?", (agent_id,)).fetchone()
        return AgentContact(*row) if row is not None else AgentContact()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Lockout:
    """Failed sign-ins per agent id, counted in the live store so every server sees them: ``limit``
    failures none more than ``lock_s`` apart lock the id until ``lock_s`` after the last one."""

    def __init__(self, store: LiveStore, limit: int = 5, lock_s: float = 60.0) -> None:
        self.store, self.limit, self.lock_s = store, limit, lock_s

    async def locked_for(self, agent_id: str, now: float) -> float:
        """Seconds the id stays locked (0: not locked)."""
        count, left = await self.store.failures(_signin(agent_id), now)
        return left if count >= self.limit else 0.0

    async def failed(self, agent_id: str, now: float) -> None:
        await self.store.count_failure(_signin(agent_id), now, self.lock_s)

    async def succeeded(self, agent_id: str) -> None:
        await self.store.clear_failures(_signin(agent_id))


def _signin(agent_id: str) -> str:
    return f"signin:{agent_id}"
