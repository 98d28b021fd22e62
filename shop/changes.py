"""Order changes a caller may make by phone: address, colour or size of an order not yet shipped.

Fields: ``address``; ``color`` (keeps the size) and ``size`` (keeps the colour), each picking an
existing SKU of the same product with stock for the line's quantity; ``sku`` switches a line to
another SKU of the same product in one step (colour and size together, e.g. 浅蓝28 -> 深蓝30,
where changing one field at a time would pass through a SKU that does not exist).

``plan_change`` decides (pure); the store applies the plan and logs it in one transaction. Every
refusal is a ``core.shop.ChangeRefused`` with a reason and facts; the dialog words it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.shop import ChangeRefused, Order, OrderItem, OrderStatus, Product, Variant

FIELDS = ("address", "color", "size", "sku")
MAX_ADDRESS = 200
_CHANGEABLE = (OrderStatus.UNPAID, OrderStatus.PAID)


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
    """What changing ``field`` to ``new_value`` means for ``order``; raises ChangeRefused if not allowed."""
    if field not in FIELDS:
        raise ChangeRefused("field")
    if order.status not in _CHANGEABLE:
        raise ChangeRefused("status", status=order.status.value, field=field)
    value = new_value.strip()
    if field == "address":
        return _address(order, value)
    if field == "sku":
        return _sku_change(order, products, value, item_sku)
    return _variant_change(order, products, field, value, item_sku)


def _address(order: Order, value: str) -> ChangePlan:
    if not value or len(value) > MAX_ADDRESS:
        raise ChangeRefused("address_unclear")
    if value == order.address:
        raise ChangeRefused("address_same")
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
        raise _no_such_variant(product, field, value, item)
    _check_target(product, item, target)
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
        raise ChangeRefused("not_in_order")
    if len(lines) > 1:
        raise ChangeRefused("which_item", items=tuple(it.product_name for _, it in lines))
    pos, item = lines[0]
    target = next(v for v in owner.variants if v.sku == sku)
    _check_target(owner, item, target)
    old_variant = next((v for v in owner.variants if v.sku == item.sku), None)
    return ChangePlan("sku", item.sku, target.sku, pos, old_variant, target)


def _check_target(product: Product, item: OrderItem, target: Variant) -> None:
    if target.sku == item.sku:
        raise ChangeRefused("already", product=product.name, color=target.color, size=target.size)
    if target.stock < item.qty:
        restock = target.restock_date.isoformat() if target.restock_date else ""
        raise ChangeRefused("out_of_stock", product=product.name, color=target.color, size=target.size, restock=restock)


def _pick_item(
    order: Order, products: dict[str, Product], field: str, value: str, item_sku: str | None
) -> tuple[int, OrderItem]:
    """The one order line the change is for: named by ``item_sku``, or the only one it can apply to."""
    lines = list(enumerate(order.items))
    if item_sku is not None:
        lines = [(i, it) for i, it in lines if it.sku == item_sku]
        if not lines:
            raise ChangeRefused("not_in_order")
    if len(lines) > 1:
        wanted = _normal(value, field)
        attr = "color" if field == "color" else "size"
        fits = [
            (i, it) for i, it in lines
            if any(_normal(getattr(v, attr), field) == wanted for v in products[it.product_id].variants)
        ]  # fmt: skip
        if len(fits) == 1:
            return fits[0]
        raise ChangeRefused("which_item", items=tuple(it.product_name for _, it in (fits or lines)))
    return lines[0]


def _no_such_variant(product: Product, field: str, value: str, item: OrderItem) -> ChangeRefused:
    """The product has no variant with ``value``: what it has in the kept size (or colour) instead."""
    if field == "color":
        kept, options = item.size, sorted({v.color for v in product.variants if v.size == item.size})
    else:
        kept, options = item.color, sorted({v.size for v in product.variants if v.color == item.color})
    return ChangeRefused(
        "no_variant", product=product.name, field=field, kept=kept, wanted=value, options=tuple(options)
    )


def _normal(value: str, field: str) -> str:
    """For comparison only: 白 / 白色 -> 白, 浅蓝色 -> 浅蓝; l / L码 / 30码 -> L, 30."""
    text = value.strip()
    if field == "size":
        return re.sub(r"(码|号)$", "", text).upper()
    return text[:-1] if text.endswith("色") and len(text) > 1 else text
