"""Shipping promises from the shop's structured fields only: stated ones computed, unstated ones never invented.

Runs on the three shops of tests/shops.py: the sample shop states ``shop.fulfilment``; the reference
shop (and its renumbered copy) states its promises only in policy prose, so the hotline quotes that
prose or offers a person, and no figure appears that the shop's own text does not hold.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from shops import SHOPS, open_test_shop, snapshot_data

from core.errors import ShopDataError
from core.money import to_fen, yuan_text
from core.shop import Fulfilment, Order, OrderStatus
from core.types import Emotion, EmotionLabel, Intent, Understanding
from dialog.logistics import MAX_QUOTE, logistics_expedite, logistics_track, quote
from dialog.reasons import why_text
from dialog.state import Context
from shop.fulfilment import GAPS, promise_gaps
from shop.importer import parse_snapshot
from shop.store import SqliteShop
from voice.cli import main

_DIGITS = re.compile(r"\d+")


@pytest.fixture(scope="module", params=SHOPS)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def data(name: str) -> dict[str, Any]:
    return snapshot_data(name)


@pytest.fixture(scope="module")
def shop(name: str, tmp_path_factory: pytest.TempPathFactory) -> SqliteShop:
    return open_test_shop(name, tmp_path_factory.mktemp(name))


def ctx_of(shop: SqliteShop) -> Context:
    as_of = shop.info().as_of
    assert isinstance(as_of, datetime)
    return Context.create(shop, as_of)


def said(text: str) -> Understanding:
    return Understanding(text, text, (Intent("logistics.track", 0.9),), Emotion(EmotionLabel.NEUTRAL, 0.0))


def orders(shop: SqliteShop, data: dict[str, Any]) -> list[Order]:
    found = [shop.order(o["id"]) for o in data["orders"]]
    return [o for o in found if o is not None]


def test_the_stated_promises_are_stored_and_the_gaps_reported(shop: SqliteShop, data: dict[str, Any]) -> None:
    stated = data["shop"].get("fulfilment")
    terms = shop.info().fulfilment
    if stated is None:
        assert terms == Fulfilment()
        assert len(promise_gaps(terms)) == len(GAPS)
        return
    assert terms.dispatch_hours == stated["dispatch_hours"] and terms.return_days == stated["return_days"]
    default = next(c for c in stated["carriers"] if c.get("default"))
    assert terms.default_carrier is not None and terms.default_carrier.name == default["name"]
    upgrade = next(c for c in stated["carriers"] if "upgrade_fee" in c)
    assert terms.upgrade is not None and terms.upgrade.upgrade_fee_fen == to_fen(str(upgrade["upgrade_fee"]))
    assert promise_gaps(terms) == ()


def test_tracking_answers_are_short_and_hold_only_the_shops_figures(shop: SqliteShop, data: dict[str, Any]) -> None:
    ctx = ctx_of(shop)
    policy_digits = set(_DIGITS.findall(json.dumps(data["policies"], ensure_ascii=False)))
    stated = shop.info().fulfilment != Fulfilment()
    for order in orders(shop, data):
        part = logistics_track(Intent("logistics.track", 0.9), order, said("到哪了"), ctx)
        first = re.split(r"(?<=[。！？])", part.text)[0]
        assert len(part.text) <= 90 and len(first) <= 40, part.text
        if order.shipment and order.shipment.events:
            assert order.shipment.events[-1].where in part.text
        if order.status is OrderStatus.PAID and not stated:
            # nothing stated: the shop's own clause, or a colleague checks; every digit is the shop's own
            assert part.kb_ids or part.offer is not None, part.text
            assert set(_DIGITS.findall(part.text)) <= policy_digits, part.text


def test_expedite_computes_stated_promises_and_invents_none(shop: SqliteShop, data: dict[str, Any]) -> None:
    ctx = ctx_of(shop)
    terms = shop.info().fulfilment
    policy_digits = set(_DIGITS.findall(json.dumps(data["policies"], ensure_ascii=False)))
    unshipped = [o for o in orders(shop, data) if o.status is OrderStatus.PAID and o.shipment is None]
    assert unshipped
    for order in unshipped:
        part = logistics_expedite(Intent("logistics.expedite", 0.9), order, said("能快点吗"), ctx)
        assert len(part.text) <= 90 and part.text
        options = shop.expedite_options(order.id, ctx.now)
        if terms.upgrade is None:
            assert options == [] and set(_DIGITS.findall(part.text)) <= policy_digits, part.text
        for option in options:
            if option.kind == "carrier_upgrade" and option.cost_fen:
                assert option.cost_fen == terms.upgrade.upgrade_fee_fen  # type: ignore[union-attr]
    if terms.upgrade is not None:
        fee = yuan_text(terms.upgrade.upgrade_fee_fen or 0)
        texts = [logistics_expedite(Intent("logistics.expedite", 0.9), o, said("快"), ctx).text for o in unshipped]
        assert any(fee in t or "免费升级" in t for t in texts), texts


def test_a_quote_is_the_shops_first_sentence_within_the_limit() -> None:
    assert quote("周一到周五发货；周末不发。其余照常。") == "周一到周五发货。"
    assert quote("两小时内回复。") == "两小时内回复。"
    assert quote("很" * MAX_QUOTE + "。") == ""


@pytest.mark.parametrize(
    ("fulfilment", "message"),
    [
        ({"same_day_cutoff": "25:00"}, r"shop.fulfilment.same_day_cutoff: expected a time"),
        ({"dispatch_hours": 0}, r"shop.fulfilment.dispatch_hours: expected an integer 1..720"),
        ({"carriers": [{"name": "甲", "days": 3, "fast_regions": ["上海"]}]}, r"carriers\[0\].fast_days"),
        (
            {"carriers": [{"name": "甲", "days": 3, "default": True}, {"name": "乙", "days": 1, "default": True}]},
            r"shop.fulfilment.carriers: expected at most one default carrier",
        ),
        ({"carriers": [{"name": "甲", "days": 2, "upgrade_fee": -1}]}, r"carriers\[0\].upgrade_fee: expected"),
        ({"vip": {"priority_shipping": "gold"}}, r"shop.fulfilment.vip.priority_shipping: expected a list"),
    ],
)
def test_a_bad_fulfilment_section_names_the_field(fulfilment: dict[str, Any], message: str) -> None:
    doc = snapshot_data("sample")
    doc["shop"]["fulfilment"] = fulfilment
    with pytest.raises(ShopDataError, match=message):
        parse_snapshot(json.dumps(doc, ensure_ascii=False), source="bad")


def test_the_default_carrier_may_be_marked_anywhere_in_the_list() -> None:
    doc = snapshot_data("sample")
    doc["shop"]["fulfilment"] = {
        "carriers": [{"name": "乙", "days": 1, "upgrade_fee": 9}, {"name": "甲", "days": 3, "default": True}]
    }
    terms = parse_snapshot(json.dumps(doc, ensure_ascii=False), source="x").info.fulfilment
    assert [c.name for c in terms.carriers] == ["甲", "乙"] and terms.upgrade is not None


def test_every_promotion_reason_is_facts_worded_by_the_dialog(shop: SqliteShop, data: dict[str, Any]) -> None:
    titles = {p["id"]: p["title"] for p in data["promotions"]}
    for order in orders(shop, data):
        audit = shop.audit_promotions(order.id)
        assert audit is not None
        for why in (*audit.ineligible, *audit.missed):
            text = why_text(why.reason)
            assert text and "{" not in text and len(text) <= 90, (why, text)
            facts = why.reason.facts
            if why.reason.code == "threshold_short":
                assert facts["short_fen"] == facts["threshold_fen"] - facts["base_fen"]  # type: ignore[operator]
                assert yuan_text(int(facts["short_fen"])) in text  # type: ignore[call-overload]
            assert why.title == titles.get(why.promotion_id, why.title)


def test_ivr_call_reports_the_promises_the_shop_does_not_state(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in [n for n in os.environ if n.startswith("IVR_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("IVR_DB_PATH", str(tmp_path / "shop.sqlite3"))
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(snapshot_data(name), ensure_ascii=False), encoding="utf-8")
    assert main(["call", "--shop", str(path), "--say", "你好", "--json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["shop_warnings"]
    stated = snapshot_data(name)["shop"].get("fulfilment", {})
    assert {w.split(":")[0] for w in warnings} == {f"shop.fulfilment.{f}" for f in GAPS if f not in stated}
