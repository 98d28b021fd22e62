"""Agent accounts: scrypt password hashes with their parameters, verification, contacts, the sign-in
lockout (time as an input), and the ``ivr agents`` command run as a real process."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REFERENCE_SHOP, shared

from core.errors import ConfigError
from routing.accounts import Accounts, AgentContact, Lockout, hash_password, password_matches
from routing.store import MemoryStore

REPO = Path(__file__).resolve().parents[1]


def test_a_password_is_stored_as_a_salted_scrypt_hash_with_its_parameters(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "hotline.sqlite3")
    accounts.set_password("A01", "正确的密码-horse")
    (stored,) = (
        sqlite3.connect(tmp_path / "hotline.sqlite3")
        .execute("SELECT password_hash FROM agent_accounts WHERE agent_id = 'A01'")
        .fetchone()
    )
    scheme, n, r, p, salt, digest = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert "horse" not in stored and len(bytes.fromhex(salt)) == 16
    expected = hashlib.scrypt("正确的密码-horse".encode(), salt=bytes.fromhex(salt), n=16384, r=8, p=1, dklen=32)
    assert bytes.fromhex(digest) == expected
    assert hash_password("正确的密码-horse") != hash_password("正确的密码-horse")  # a fresh salt each time


def test_verify_accepts_the_password_and_refuses_others(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "hotline.sqlite3")
    accounts.set_password("A01", "first-password")
    assert accounts.verify("A01", "first-password")
    assert not accounts.verify("A01", "first-passwore")
    assert not accounts.verify("A01", "")
    assert not accounts.verify("A02", "first-password")  # no account
    accounts.set_password("A01", "second-password")
    assert accounts.verify("A01", "second-password") and not accounts.verify("A01", "first-password")
    assert Accounts(tmp_path / "hotline.sqlite3").verify("A01", "second-password")  # it is on disk


def test_malformed_hashes_never_match() -> None:
    good = hash_password("some-password")
    assert password_matches("some-password", good)
    for bad in ("", "plain", good.replace("scrypt", "md5"), good[:-2], "scrypt$x$8$1$00$00"):
        assert not password_matches("some-password", bad)


def test_a_short_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="8 to 256"):
        Accounts(tmp_path / "h.sqlite3").set_password("A01", "short")


def test_contacts_are_kept_changed_and_cleared_field_by_field(tmp_path: Path) -> None:
    accounts = Accounts(tmp_path / "hotline.sqlite3")
    assert accounts.contact("A01") == AgentContact()
    accounts.set_contact("A01", sip_uri="sip:a01@pbx.example.com")
    accounts.set_contact("A01", phone="+8613800138000")
    assert accounts.contact("A01") == AgentContact("sip:a01@pbx.example.com", "+8613800138000")
    accounts.set_password("A01", "a-password")  # a password does not touch the contact
    assert accounts.contact("A01").sip_uri == "sip:a01@pbx.example.com" and accounts.verify("A01", "a-password")
    accounts.set_contact("A01", sip_uri="")
    assert accounts.contact("A01") == AgentContact(None, "+8613800138000")
    assert accounts.verify("A01", "a-password")  # and a contact does not touch the password


def test_five_failures_lock_an_id_for_a_minute() -> None:
    async def main() -> None:
        lockout = Lockout(MemoryStore())
        for _ in range(4):
            await lockout.failed("A01", 100.0)
        assert await lockout.locked_for("A01", 100.0) == 0
        await lockout.failed("A01", 100.0)
        assert await lockout.locked_for("A01", 100.0) == 60.0
        assert await lockout.locked_for("A01", 159.5) == pytest.approx(0.5)
        assert await lockout.locked_for("A02", 100.0) == 0  # per id
        assert await lockout.locked_for("A01", 160.0) == 0
        for _ in range(4):
            await lockout.failed("A01", 170.0)
        await lockout.succeeded("A01")  # a success starts the count again
        await lockout.failed("A01", 171.0)
        assert await lockout.locked_for("A01", 171.0) == 0
        for at in range(200, 800, 61):  # failures more than a minute apart never add up to a lock
            await lockout.failed("A01", float(at))
            assert await lockout.locked_for("A01", float(at)) == 0

    asyncio.run(main())


def ivr(tmp_path: Path, *args: str, stdin: str = "", shop: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env.update(PYTHONPATH=str(REPO), IVR_DB_PATH=str(tmp_path / "hotline.sqlite3"))
    if shop is not None:
        env["IVR_SHOP_FILE"] = str(shop)
    command = [sys.executable, "-m", "voice.cli", "agents", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_the_cli_sets_a_password_from_stdin_and_lists_the_shops_agents(tmp_path: Path) -> None:
    shop = shared(REFERENCE_SHOP)
    done = ivr(tmp_path, "passwd", "A02", "--stdin", stdin="desk-password-2\n", shop=shop)
    assert done.returncode == 0, done.stderr
    assert Accounts(tmp_path / "hotline.sqlite3").verify("A02", "desk-password-2")
    done = ivr(tmp_path, "contact", "A02", "--sip", "sip:a02@pbx.example.com", "--phone", "+8613800138002", shop=shop)
    assert done.returncode == 0, done.stderr
    listing = ivr(tmp_path, "list", shop=shop)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert set(rows) == {"A01", "A02", "A03", "A04", "A05"}
    assert "complaint:4" in rows["A02"] and "上海话" in rows["A02"]
    assert " set " in rows["A02"] and "sip:a02@pbx.example.com +8613800138002" in rows["A02"]
    assert " set " not in rows["A01"] and rows["A01"].rstrip().endswith("-")


def test_the_cli_refuses_an_id_the_shop_lacks_and_bad_input(tmp_path: Path) -> None:
    # the embedded sample shop has agents B01..B05: A01 belongs to another shop
    done = ivr(tmp_path, "passwd", "A01", "--stdin", stdin="desk-password-1\n")
    assert done.returncode == 2 and "no agent 'A01'" in done.stderr and "B01" in done.stderr
    assert not Accounts(tmp_path / "hotline.sqlite3").has_password("A01")
    done = ivr(tmp_path, "passwd", "B01", "--stdin", stdin="short\n")
    assert done.returncode == 2 and "8 to 256" in done.stderr
    done = ivr(tmp_path, "contact", "B01", "--sip", "a01@pbx")
    assert done.returncode == 2 and "SIP URI" in done.stderr
    done = ivr(tmp_path, "contact", "B01", "--phone", "13800138000")
    assert done.returncode == 2 and "E.164" in done.stderr
    assert Accounts(tmp_path / "hotline.sqlite3").contact("B01") == AgentContact()
