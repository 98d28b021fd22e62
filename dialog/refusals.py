"""Why an order change was refused, in the caller's words: ``core.shop.ChangeRefused`` facts → replies.json."""

from __future__ import annotations

from datetime import date

from core.errors import IvrError
from core.shop import ChangeRefused
from dialog.replies import date_text, join_list, render, size_text

_FIELD_KEYS = {"address": "change.what.address", "color": "change.what.color", "size": "change.what.size",
               "sku": "change.what.sku"}  # fmt: skip


def refusal_text(err: IvrError, today: date) -> str:
    """One sentence for the caller; an error that is not a refusal becomes the generic 「没改成」."""
    if not isinstance(err, ChangeRefused):
        return render("change.failed")
    items = err.facts.get("items", ())
    if err.reason == "which_item" and len(set(items)) == 1:
        return render("change.which_of_same", count=len(items), product=items[0])
    f = {k: join_list(dict.fromkeys(v)) if isinstance(v, tuple) else v for k, v in err.facts.items()}
    if err.reason == "status":
        what = render(_FIELD_KEYS.get(f["field"], "change.what.sku"))
        return render(f"change.status.{f['status']}", what=what)
    if err.reason == "already":
        return render("change.already", product=f["product"], value=f"{f['color']}{size_text(f['size'])}")
    if err.reason in ("out_of_stock", "sold_out"):
        item = f"{f['product']}{f['color']}{size_text(f['size'])}"
        if err.reason == "sold_out":
            return render("change.sold_out", item=item)
        restock = f["restock"]
        if restock:
            return render("change.out_of_stock_until", item=item, restock=date_text(date.fromisoformat(restock), today))
        return render("change.out_of_stock", item=item)
    if err.reason == "no_variant":
        kept = size_text(f["kept"]) if f["field"] == "color" else f["kept"]
        return render("change.no_variant", product=f["product"] + kept, wanted=f["wanted"], options=f["options"])
    return render(f"change.{err.reason}", **f)
