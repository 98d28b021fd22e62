"""Order changes a caller may make by phone: address, colour or size of an order not yet shipped.

Fields: ``address``; ``color`` (keeps the size) and ``size`` (keeps the colour), each picking an
existing SKU of the same product with stock for the line's quantity; ``sku`` switches a line to
another SKU of the same product in one step (colour and size together, e.g. 浅蓝28 -> 深蓝30,
where changing one field at a time would pass through a SKU that does not exist).

``plan_change`` decides (pure); the store applies the plan and logs it in one transaction. Every
refusal is an ``OrderChangeError`` whose message can be read to the caller as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import IvrError
from core.shop import Order, OrderItem, OrderStatus, Product, Variant
from shop.textfmt import day_text

FIELDS = ("address", "color", "size", "sku")
MAX_ADDRESS = 200
_CHANGEABLE = (OrderStatus.UNPAID, OrderStatus.PAID)
_FIELD_NAMES = {"address": "收货地址", "color": "颜色", "size": "尺码", "sku": "颜色和尺码"}
_REFUSALS = {
    OrderStatus.SHIPPED: "订单已经发货了，不能再修改{what}。可以联系快递拦截转寄，产生的费用需要您承担。",
    OrderStatus.DELIVERED: "订单已经签收了，不能再修改{what}。如果不合适，可以申请退换货。",
    OrderStatus.REFUNDING: "订单正在退款，不能修改{what}。",
    OrderStatus.CANCELLED: "订单已经取消了，不能修改{what}。",
}


class OrderChangeError(IvrError):
    """The change is not allowed; ``str(err)`` is a sentence for the caller."""


@dataclass(frozen=True, slots=True)
class ChangePlan:
    field: str
    old: str
    new: str
    item_pos: int | None = None  # the order line whose SKU changes
    old_variant: Variant | None = None
    new_variant: Variant | None = None


def plan_change(
    order: Order, products: dict[str, Product], field: str, new_value: str, item_sku: str | None = None
) -> ChangePlan:
    """What changing ``field`` to ``new_value`` means for ``order``; raises OrderChangeError if not allowed."""
    if field not in FIELDS:
        raise OrderChangeError("电话里只能修改收货地址、颜色和尺码。")
    if order.status not in _CHANGEABLE:
        raise OrderChangeError(_REFUSALS[order.status].format(what=_FIELD_NAMES[field]))
    value = new_value.strip()
    if field == "address":
        return _address(order, value)
    if field == "sku":
        return _sku_change(order, products, value, item_sku)
    return _variant_change(order, products, field, value, item_sku)


def _address(order: Order, value: str) -> ChangePlan:
    if not value or len(value) > MAX_ADDRESS:
        raise OrderChangeError("新的收货地址没有听清楚，麻烦您再说一遍。")
    if value == order.address:
        raise OrderChangeError("新地址和原来的地址一样，不需要修改。")
    return ChangePlan("address", order.address, value)


def _variant_change(
    order: Order, products: dict[str, Product], field: str, value: str, item_sku: str | None
) -> ChangePlan:
    pos, item = _pick_item(order, products, field, value, item_sku)
    product = products[item.product_id]
    old_variant = next((v for v in product.variants if v.sku == item.sku), None)
    wanted = _normal(value, field)
    color, size = (wanted, _normal(item.size, "size")) if field == "color" else (_normal(item.color, "color"), wanted)
    target = next(
        (v for v in product.variants if _normal(v.color, "color") == color and _normal(v.size, "size") == size), None
    )
    if target is None:
        raise OrderChangeError(_no_such_variant(product, field, value, item))
    _check_target(product, item, target, value)
    old = item.color if field == "color" else item.size
    new = target.color if field == "color" else target.size
    return ChangePlan(field, old, new, pos, old_variant, target)


def _sku_change(order: Order, products: dict[str, Product], sku: str, item_sku: str | None) -> ChangePlan:
    owner = next((p for p in products.values() if any(v.sku == sku for v in p.variants)), None)
    lines = [
        (i, it)
        for i, it in enumerate(order.items)
        if owner is not None and it.product_id == owner.id and (item_sku is None or it.sku == item_sku)
    ]
    if owner is None or not lines:
        raise OrderChangeError("订单里没有这款商品，只能换成同一款商品的其他颜色或尺码。")
    if len(lines) > 1:
        raise OrderChangeError(f"订单里有{len(lines)}件{owner.name}，请问要改哪一件？")
    pos, item = lines[0]
    target = next(v for v in owner.variants if v.sku == sku)
    _check_target(owner, item, target, f"{target.color}{target.size}码")
    old_variant = next((v for v in owner.variants if v.sku == item.sku), None)
    return ChangePlan("sku", item.sku, target.sku, pos, old_variant, target)


def _check_target(product: Product, item: OrderItem, target: Variant, said: str) -> None:
    if target.sku == item.sku:
        raise OrderChangeError(f"您的{product.name}已经是{said}了，不需要修改。")
    if target.stock < item.qty:
        when = f"，预计{day_text(target.restock_date)}补货" if target.restock_date else ""
        raise OrderChangeError(f"{product.name}{target.color}{target.size}码暂时缺货{when}。")


def _pick_item(
    order: Order, products: dict[str, Product], field: str, value: str, item_sku: str | None
) -> tuple[int, OrderItem]:
    """The one order line the change is for: named by ``item_sku``, or the only one it can apply to."""
    lines = list(enumerate(order.items))
    if item_sku is not None:
        lines = [(i, it) for i, it in lines if it.sku == item_sku]
        if not lines:
            raise OrderChangeError("订单里没有这件商品。")
    if len(lines) > 1:
        wanted = _normal(value, field)
        attr = "color" if field == "color" else "size"
        fits = [
            (i, it) for i, it in lines
            if any(_normal(getattr(v, attr), field) == wanted for v in products[it.product_id].variants)
        ]  # fmt: skip
        if len(fits) == 1:
            return fits[0]
        names = "、".join(it.product_name for _, it in (fits or lines))
        raise OrderChangeError(f"订单里有{names}，请问要改哪一件？")
    return lines[0]


def _no_such_variant(product: Product, field: str, value: str, item: OrderItem) -> str:
    if field == "color":
        in_size = sorted({v.color for v in product.variants if v.size == item.size})
        return f"{product.name}{item.size}码没有{value}，有{'、'.join(in_size)}。"
    sizes = sorted({v.size for v in product.variants if v.color == item.color})
    return f"{product.name}{item.color}没有{value}码，有{'、'.join(sizes)}码。"


def _normal(value: str, field: str) -> str:
    """For comparison only: 白 / 白色 -> 白, 浅蓝色 -> 浅蓝; l / L码 / 30码 -> L, 30."""
    text = value.strip()
    if field == "size":
        return re.sub(r"(码|号)$", "", text).upper()
    return text[:-1] if text.endswith("色") and len(text) > 1 else text
