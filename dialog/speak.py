"""A reply made fit for the phone: key fact first, short, no sentence twice, not the same words again.

``compose(body, question, said)`` turns the answers of a turn (``body``) and the question that ends
it into what is spoken: repeated sentences are dropped, a first sentence over ``FIRST_MAX``
characters is cut at a comma, and what does not fit in ``REPLY_MAX`` is kept back and offered
(「要我再详细说说吗？」) instead of read out. A reply identical to one already said in the call is
replaced by its shorter form, so a caller who rephrases does not hear the same words twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.types import EmotionLabel, Skill, Understanding
from dialog.answers import change_question
from dialog.orders import choices_text
from dialog.replies import DESKS, order_ref, render
from dialog.slots import order_number_hint
from dialog.state import (
    ChooseOrder,
    CollectAddress,
    CollectVariant,
    ConfirmChange,
    Context,
    NeedOrderId,
    OfferCallback,
    OfferDetails,
    OfferTransfer,
    Part,
    Pending,
    Verify,
)

FIRST_MAX = 40
REPLY_MAX = 90
_SENTENCE = re.compile(r"[^。！？!?]+[。！？!?]?")
_COMMA = "，,；;"


@dataclass(frozen=True, slots=True)
class Spoken:
    text: str  # what is said now
    held_back: str = ""  # details that did not fit, to offer


def sentences(text: str) -> list[str]:
    return [s for s in (m.group().strip() for m in _SENTENCE.finditer(text)) if s]


def _split_first(first: str) -> list[str]:
    """A first sentence over FIRST_MAX becomes two, cut at the last comma that keeps it short."""
    if len(first) <= FIRST_MAX:
        return [first]
    cut = max((i for i, ch in enumerate(first[: FIRST_MAX - 1]) if ch in _COMMA), default=-1)
    if cut <= 0:
        return [first]
    return [first[:cut] + "。", first[cut + 1 :]]


def compose(body: str, question: str, said: tuple[str, ...] = (), lead: str = "") -> Spoken:
    """The reply to speak (``lead``, the body sentences that fit, then the question) and the details
    held back. A body already said in the last replies (the caller asked again in other words) is
    shortened to its first sentence, marked as unchanged."""
    parts = list(dict.fromkeys(sentences(body)))
    if question:
        parts = [s for s in parts if s != question]
    if parts and _already_said(parts, said):
        parts = sentences(render("repeat", first=_split_first(parts[0])[0]))
    if parts or lead:
        parts = _split_first(lead + (parts[0] if parts else "")) + parts[1:]
    budget = REPLY_MAX - len(question)
    kept: list[str] = []
    for i, s in enumerate(parts):
        if i and len("".join(kept)) + len(s) > budget:
            return Spoken("".join(kept) + question, "".join(parts[i:]))
        kept.append(s)
    return Spoken("".join(kept) + question)


_PUNCTUATION = re.compile(r"[。！？!?，,；;、：:\s]")
RECENT = 3  # replies looked back at for a repeat


def _plain(text: str) -> str:
    return _PUNCTUATION.sub("", text)


def _already_said(parts: list[str], said: tuple[str, ...]) -> bool:
    recent = _plain("".join(said[-RECENT:]))
    return bool(recent) and all(_plain(s) in recent for s in parts)


def empathy(u: Understanding) -> str:
    if u.emotion.label is EmotionLabel.ANGRY:
        return render("empathy.angry")
    urgent = any(i.slots.get("urgency") == "high" for i in u.intents)
    return render("empathy.anxious") if u.emotion.label is EmotionLabel.ANXIOUS or urgent else ""


def join_parts(parts: list[Part], ctx: Context) -> str:
    """The answers as one reply; an order already named in it is then just 「这单」."""
    text, named = "", set()
    for part in parts:
        piece = part.text
        order = ctx.shop.order(part.order_id) if part.order_id and piece else None
        if order is not None:
            ref = order_ref(ctx.shop, order, ctx.today, ctx.tz)
            if ref in named:
                piece = piece.replace(ref, "这单")
            elif ref in piece:
                named.add(ref)
        text += piece
    return text


_QUESTION_ORDER = (
    Verify,
    ConfirmChange,
    CollectAddress,
    CollectVariant,
    NeedOrderId,
    ChooseOrder,
    OfferTransfer,
    OfferDetails,
)


def first_question(parts: list[Part]) -> Pending | None:
    offers = [p.offer for p in parts if p.offer is not None]
    for kind in _QUESTION_ORDER:
        found = next((o for o in offers if isinstance(o, kind)), None)
        if found is not None:
            return found
    return None


def question_text(pending: Pending, ctx: Context) -> str:
    if isinstance(pending, ConfirmChange):
        return change_question(pending, ctx)
    if isinstance(pending, ChooseOrder):
        return render("ask.which_order", choices=choices_text(pending.candidates, ctx))
    if isinstance(pending, NeedOrderId):
        return render("ask.order_id", shape=order_number_hint(ctx.info.order_numbers))
    if isinstance(pending, Verify):
        return render("verify.ask")
    if isinstance(pending, CollectAddress):
        return render("ask.address")
    if isinstance(pending, CollectVariant):
        return render("ask.color" if pending.field == "color" else "ask.size")
    if isinstance(pending, OfferDetails):
        return pending.question or render("offer.details")
    if isinstance(pending, OfferCallback):
        return render("transfer.offer_callback")
    if isinstance(pending, OfferTransfer):
        if pending.skill is Skill.LOGISTICS:
            return render("offer.logistics")
        return render("offer.transfer", desk=DESKS[pending.skill.value])
    raise ValueError(f"expected a question to ask, got {type(pending).__name__}")


def offer_for(held_back: str, parts: list[Part], ctx: Context) -> str:
    """「要我把退款规则也说一下吗？」 when what is held back is a shop policy, else a plain offer."""
    first = sentences(held_back)[0] if held_back else ""
    titles = {p.id: p.title for p in ctx.shop.policies()}
    for part in parts:
        policy_only = part.kb_ids and not part.note  # a rule read out, not money or a promise
        if first and first in part.text and policy_only and part.kb_ids[0] in titles:
            return render("offer.policy", title=titles[part.kb_ids[0]])
    return render("offer.details")
