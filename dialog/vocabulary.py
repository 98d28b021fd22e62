"""The shop's own words: product names, spoken aliases, colours and sizes, and how its order numbers look.

The vocabulary feeds two things: the homophone repair in ``dialog/normalize.py`` (so that an ASR slip
such as 羽绒符 becomes 羽绒服) and the slot filler in ``dialog/slots.py`` (so that 羽绒服 becomes P1003,
and a spoken number of the shop's order-number shape becomes an order id).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from core.shop import OrderNumbers, Product
from dialog.normalize import is_common_word

# A trailing specification in a product name (500ml, 5双装) is not how callers name a product.
_SPEC_TAIL = re.compile(r"[0-9]+[A-Za-z双件只个套装ml]*$")
_MIN_DERIVED = 3  # shortest name suffix taken as an extra spoken term (学步鞋 from 防滑学步鞋)


def spoken_form(term: str) -> str:
    """The form terms are compared in: ASCII upper-cased, no spaces (what the normaliser produces)."""
    return term.replace(" ", "").upper()


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Spoken product terms mapped to product ids, plus the colours and sizes the shop sells.

    ``terms`` keys are in ``spoken_form``. Explicit names and aliases always win over terms derived
    from name suffixes; a derived term that two products share is dropped as ambiguous.
    """

    terms: Mapping[str, str] = field(default_factory=dict)
    colors: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    names: Mapping[str, str] = field(default_factory=dict)  # product id -> display name
    order_numbers: OrderNumbers = OrderNumbers()  # the shop's order-number shapes (``ShopInfo.order_numbers``)

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", MappingProxyType(dict(self.terms)))
        object.__setattr__(self, "names", MappingProxyType(dict(self.names)))

    @classmethod
    def empty(cls) -> Vocabulary:
        return cls()

    @classmethod
    def from_products(cls, products: Sequence[Product], order_numbers: OrderNumbers | None = None) -> Vocabulary:
        explicit: dict[str, str] = {}
        for product in products:
            for term in (product.name, *product.aliases):
                key = spoken_form(term)
                if key and key not in explicit:
                    explicit[key] = product.id
        derived = _derived_terms(products)
        terms = {**{k: v for k, v in derived.items() if k not in explicit}, **explicit}
        colors = _unique(v.color for p in products for v in p.variants)
        sizes = _unique(v.size for p in products for v in p.variants)
        names = {p.id: p.name for p in products}
        return cls(terms, colors, sizes, names, order_numbers or OrderNumbers())

    def lexicon(self) -> tuple[str, ...]:
        """Words of two or more characters the homophone repair may restore."""
        words = [t for t in self.terms if len(t) >= 2] + [c for c in self.colors if len(c) >= 2]
        return tuple(dict.fromkeys(words))

    def __bool__(self) -> bool:
        return bool(self.terms or self.colors or self.sizes)


def _derived_terms(products: Sequence[Product]) -> dict[str, str]:
    """Name suffixes that start a word (学步鞋 from 防滑学步鞋, not 滑学步鞋), kept only when unambiguous."""
    seen: dict[str, set[str]] = {}
    for product in products:
        base = _SPEC_TAIL.sub("", spoken_form(product.name)) or spoken_form(product.name)
        for start in range(1, len(base) - _MIN_DERIVED + 1):
            suffix = base[start:]
            if is_common_word(suffix) or is_common_word(suffix[:2]):
                seen.setdefault(suffix, set()).add(product.id)
        seen.setdefault(base, set()).add(product.id)
    return {term: next(iter(ids)) for term, ids in seen.items() if len(ids) == 1}


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))
