"""The brain through ``ivr call`` with the real understander, on every test shop: what callers say in
their own words reaches the same dialog as the hand-built understandings of test_brain_*.py. Expected
facts come from each shop's data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from brain import all_orders, customers, shop_for
from shops import SHOPS, snapshot_data

from core.money import yuan_text
from core.shop import OrderStatus
from dialog.deals import REGULAR
from dialog.replies import short_name, size_text
from voice.cli import main


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("IVR_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("IVR_DB_PATH", str(tmp_path / "default.sqlite3"))


def ivr_call(capsys: pytest.CaptureFixture[str], shop: Path, caller: str | None, *said: str) -> dict[str, Any]:
    args = ["call", "--shop", str(shop), *(["--caller", caller] if caller else [])]
    for text in said:
        args += ["--say", text]
    code = main([*args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def shop_file(name: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(snapshot_data(name), ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("name", SHOPS)
def test_an_address_said_after_asking_to_change_it_is_read_back_and_changed(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = shop_for(name, tmp_path)
    owner = next(
        c
        for c in customers(shop, name)
        if [o.status for o in shop.orders_for_customer(c.id) if o.status in (OrderStatus.PAID, OrderStatus.UNPAID)]
        == [OrderStatus.PAID]
    )
    new = "江苏省苏州市工业园区星湖街328号"
    call = ivr_call(capsys, shop_file(name, tmp_path), owner.phone, "我想改个收货地址", new, "对")
    ask, read_back, done = (t["reply"] for t in call["turns"])
    assert "新地址" in ask and f"您的新地址是{new}，对吗？" in read_back and f"改成{new}" in done
    assert call["outcome"]["type"] == "resolved"


@pytest.mark.parametrize("name", SHOPS)
def test_agent_hours_and_a_computed_bundle_price_in_the_callers_words(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = shop_for(name, tmp_path)
    now = shop.info().as_of
    assert now is not None
    start, end = shop.info().agent_hours
    bundle = next(p for p in shop.promotions() if p.kind == "bundle")
    products = [p for p in (shop.product(str(i)) for i in bundle.params["products"]) if p]  # type: ignore[union-attr]
    names = [short_name(shop, p.id, p.name) for p in products]
    quote = shop.quote([(next(v.sku for v in p.variants if v.stock > 0), 1) for p in products], REGULAR, now)
    said = ("你们人工客服几点上班", f"{names[0]}和{names[1]}一起买能便宜多少")
    call = ivr_call(capsys, shop_file(name, tmp_path), None, *said)
    hours, price = (t["reply"] for t in call["turns"])
    assert start in hours and end in hours and "转接" not in hours
    assert yuan_text(quote.subtotal_fen) in price and yuan_text(quote.total_fen) in price
    assert call["outcome"]["type"] == "resolved"


@pytest.mark.parametrize("name", SHOPS)
def test_a_complaint_about_a_product_transfers_with_the_order_that_holds_it(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = shop_for(name, tmp_path)
    found = []
    for customer in customers(shop, name):
        orders = shop.orders_for_customer(customer.id)
        for order in orders if len(orders) > 1 else []:
            others = {i.product_id for o in orders if o.id != order.id for i in o.items}
            found += [(customer, order, i.product_id) for i in order.items if i.product_id not in others]
    customer, order, pid = found[0]
    product = shop.product(pid)
    assert product is not None and order in all_orders(shop, name)
    said = f"我要投诉，你们的{short_name(shop, pid, product.name)}质量太差了"
    call = ivr_call(capsys, shop_file(name, tmp_path), customer.phone, said)
    outcome = call["outcome"]
    assert outcome["type"] in ("transferred", "callback") and outcome["skill"] == "complaint"
    assert order.id in " ".join(outcome["summary"])  # the agent is told which order


@pytest.mark.parametrize("name", SHOPS)
def test_follow_ups_keep_the_product_and_the_order_in_the_callers_words(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = shop_for(name, tmp_path)
    product = next(p for p in shop.products() if len({v.color for v in p.variants}) > 1)
    variant = next(v for v in product.variants if v.color != product.variants[0].color)
    owner = next(c for c in customers(shop, name) if len(shop.orders_for_customer(c.id)) == 1)
    spoken = short_name(shop, product.id, product.name)
    said = (f"{spoken}有货吗", f"{variant.color}{size_text(variant.size)}呢", "我的订单怎么样了", "能不能快点")
    call = ivr_call(capsys, shop_file(name, tmp_path), owner.phone, *said)
    _, follow, found, rush = (t["reply"] for t in call["turns"])
    assert spoken in follow and variant.color in follow and "哪一款" not in follow
    assert ("有货" in follow.split("。")[0]) is (variant.stock > 0)
    assert "订单号" not in rush and "哪" not in rush.split("。")[-1]  # acted on the order found, no question


@pytest.mark.parametrize("name", SHOPS)
def test_topping_up_names_the_callers_order_and_the_figure(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop = shop_for(name, tmp_path)
    now = shop.info().as_of
    assert now is not None
    for customer in customers(shop, name):
        unshipped = [o for o in shop.orders_for_customer(customer.id) if o.status is OrderStatus.PAID]
        add_ons = shop.add_on_suggestions(unshipped[0].id, now) if len(unshipped) == 1 else []
        if add_ons:
            break
    add_on = add_ons[0]
    said = f"那我再买个{add_on.product_name}能凑满减吗"
    reply = ivr_call(capsys, shop_file(name, tmp_path), customer.phone, said)["turns"][0]["reply"]
    assert yuan_text(add_on.short_by_fen) in reply and yuan_text(add_on.price_fen) in reply
