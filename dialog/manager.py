"""The dialog manager: a pure function of call state and what the caller said.

``start(caller, ctx) -> (state, actions)`` identifies the caller and greets them;
``handle(state, understanding, ctx) -> (state, actions)`` answers every need of one turn in one
reply, asks which order when that is genuinely unclear, confirms before changing an order, and
transfers (``dialog.policy``) when a human should take over. All shop access goes through
``ctx.shop``; the only writes are ``change_order`` after a confirmation. ``contact(state, ctx)``
is the record of the call for ``ShopPort.record_contact``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

from core.errors import IvrError, ProtocolError
from core.shop import Contact, Customer, Order, OrderStatus
from core.types import Ask, DialogAction, EmotionLabel, Hangup, Intent, Say, Skill, Transfer, Understanding
from dialog import policy
from dialog.answers import ANSWERS, TOPIC, change_question, change_words
from dialog.orders import Ambiguous, Missing, choice_phrases, choices_text, pick_order, resolve_choice
from dialog.refusals import refusal_text
from dialog.replies import DESKS, caller_name, join_list, order_ref, render
from dialog.slots import order_number_hint
from dialog.state import (
    CallState,
    ChooseOrder,
    ConfirmChange,
    Context,
    NeedOrderId,
    OfferTransfer,
    Part,
    Pending,
    Turn,
)

Actions = tuple[DialogAction, ...]

ORDER_INTENTS = frozenset(
    {
        "logistics.track", "logistics.ship_time", "logistics.carrier", "logistics.expedite", "promotion.not_applied",
        "order.modify", "order.cancel", "order.status", "aftersale.refund_status",
    }
)  # fmt: skip
ORDER_OPTIONAL = frozenset({"aftersale.return", "aftersale.exchange", "aftersale.damage", "invoice"})
_UNSHIPPED = (OrderStatus.UNPAID, OrderStatus.PAID)
ADD_ON_ASKS = frozenset({"promotion.bundle", "promotion.inquiry"})  # 凑单 may be classified as either
CONTROL = frozenset({"greeting", "goodbye", "affirm", "deny", "human_agent", "complaint", "other"})
MIN_CONFIDENCE = 0.3  # the main need of a turn
MIN_SECONDARY = 0.7  # every further need: below this the classifier is mostly echoing the main one
_ORDER_ID = re.compile(r"(?<![A-Z0-9])(?!1[3-9]\d{9}(?!\d))[A-Z]{0,4}\d{8,}(?!\d)", re.IGNORECASE)  # any shop's
RECENT_CONTACT = timedelta(days=30)


def start(caller: str | None, ctx: Context) -> tuple[CallState, Actions]:
    """Identify the caller by caller ID and greet them, using their history."""
    customer = ctx.shop.customer_by_phone(caller) if caller else None
    text = greeting(customer, ctx)
    return CallState(customer=customer).say("bot", text, ctx.elapsed), (Say(text),)


def greeting(customer: Customer | None, ctx: Context) -> str:
    if customer is None:
        return render("greet.unknown", shop=ctx.info.name)
    history = ""
    if policy.past_complaints(customer):
        history = render("greet.complained", name=caller_name(customer))
    elif customer.history:
        last = max(customer.history, key=lambda c: c.at)
        if ctx.now - last.at <= RECENT_CONTACT:
            history = render("greet.history", summary=last.summary.split("，")[0])
    return render("greet.known", name=caller_name(customer), shop=ctx.info.name, history=history)


def handle(state: CallState, u: Understanding, ctx: Context) -> tuple[CallState, Actions]:
    """One caller turn in, the new state and what to say or do out."""
    if state.ended:
        raise ProtocolError("expected a live call, got a caller turn after the call ended")
    state = replace(state.say("caller", u.text, ctx.elapsed), turns=(*state.turns, Turn(u.text, u.intents, u.emotion)))
    pending, state = state.pending, replace(state, pending=None)
    intents = _needs(u, pending)
    parts: list[Part] = []
    offered: Skill | None = None
    if pending is not None:
        settled = _settle(pending, state, u, intents, ctx)
        if settled is None:
            return _not_understood(replace(state, pending=pending), u, ctx)
        state, parts, intents, offered = settled
    elif not intents:
        return _not_understood(state, u, ctx)
    state = replace(state, failed=0)
    state, answered, ask = _answer(state, intents, u, ctx)
    parts += answered
    code = policy.OFFER if offered else policy.rule(state, u)
    if code is not None:
        topics = tuple(TOPIC[i.name] for i in intents if i.name in TOPIC)
        return _handover(state, policy.decide(code, state, topics, offered), parts, u, ctx)
    return _reply(state, parts, ask, u, ctx)


def _needs(u: Understanding, pending: Pending | None) -> tuple[Intent, ...]:
    """The intents worth acting on: not ``other``, and confident enough for their rank.

    Two readings the classifier can miss: a short 「不改了」/「行」 answering a yes/no question, and a
    bare order number (「WY2026…到哪了」), taken as asking about that order.
    """
    kept = []
    for rank, intent in enumerate(u.intents):
        floor = MIN_CONFIDENCE if rank == 0 else MIN_SECONDARY
        if intent.name != "other" and intent.confidence >= floor:
            kept.append(intent)
    names = {i.name for i in kept}
    text = (u.normalized or u.text).strip()
    if isinstance(pending, ConfirmChange | OfferTransfer) and not names & {"affirm", "deny"} and len(text) <= 6:
        answer = _yes_no(text)
        if answer is not None:
            return (Intent(answer, 0.9),)
    oid = _order_id(u)
    if not kept and oid is not None and pending is None:
        return (Intent("order.status", 0.9, {"order_id": oid}),)
    return tuple(kept)


_NO = ("不", "别", "算了", "先不", "没")
_YES = ("好", "是", "对", "行", "可以", "确认", "嗯", "没问题", "要")


def _yes_no(text: str) -> str | None:
    if text.startswith(_YES):
        return "affirm"
    if text.startswith(_NO):
        return "deny"
    return None


def _not_understood(state: CallState, u: Understanding, ctx: Context) -> tuple[CallState, Actions]:
    """Nothing to act on in the words; an angry or escalating caller still goes to a human."""
    code = policy.rule(state, u)
    if code is not None:
        return _handover(replace(state, pending=None), policy.decide(code, state, ()), [], u, ctx)
    return _failed(state, u, ctx)


# --- pending questions -------------------------------------------------------------------------

Settled = tuple[CallState, list[Part], tuple[Intent, ...], Skill | None]


def _settle(
    pending: Pending, state: CallState, u: Understanding, intents: tuple[Intent, ...], ctx: Context
) -> Settled | None:
    """Resolve what the bot asked last turn; None when the turn neither answers it nor asks anything."""
    names = {i.name for i in intents}
    rest = tuple(i for i in intents if i.name not in ("affirm", "deny"))
    if isinstance(pending, ConfirmChange | OfferTransfer) and names & {"affirm", "deny"}:
        yes = "affirm" in names and "deny" not in names
        if isinstance(pending, OfferTransfer):
            return state, [] if yes else [Part(render("anything_else"))], rest, pending.skill if yes else None
        state, part = _apply_change(pending, state, ctx) if yes else (state, Part(render("modify.kept")))
        return state, [part], rest, None
    if isinstance(pending, ChooseOrder | NeedOrderId):
        order = _chosen(pending, u, ctx)
        if isinstance(order, Order):
            state, parts = _answer_with(state, pending.intents, order, u, ctx)
            # 「围巾那单」 answers the question; what the classifier half-reads into it is an echo
            echo = {p.name for p in pending.intents} | {"order.status"}
            rest = tuple(i for i in rest if i.name not in echo and i.confidence >= MIN_SECONDARY)
            return state, parts, rest, None
        if isinstance(order, Missing):
            return state, [Part(render("order.not_found", order_id=order.order_id), offer=pending)], rest, None
    return (state, [], rest, None) if rest else None


def _chosen(pending: ChooseOrder | NeedOrderId, u: Understanding, ctx: Context) -> Order | Missing | None:
    oid = _order_id(u)
    if oid is not None:
        order = ctx.shop.order(oid)
        return order if order is not None else Missing(oid)
    if isinstance(pending, ChooseOrder):
        return resolve_choice(pending.candidates, u, ctx)
    return None


def _order_id(u: Understanding) -> str | None:
    """An order number in the turn: a slot, else one written out in the normalised text."""
    slot = next((i.slots["order_id"] for i in u.intents if "order_id" in i.slots), None)
    found = _ORDER_ID.search(u.normalized or u.text)
    return slot or (found.group().upper() if found else None)


def _apply_change(pending: ConfirmChange, state: CallState, ctx: Context) -> tuple[CallState, Part]:
    what, new = change_words(pending, ctx)
    steps = [("sku", pending.sku)] if pending.sku else list(pending.changes)
    records = []
    try:
        for field, value in steps:
            records.append(ctx.shop.change_order(pending.order_id, field, value, ctx.now))
    except IvrError as err:
        return state, Part(render("modify.failed", why=refusal_text(err, ctx.today)), pending.order_id)
    note = f"{pending.order_id}已把{what}改成{new}"
    state = replace(state, changes=state.changes + tuple(records))
    return state, Part(render("modify.done", what=what, new=new), pending.order_id, note=note, skill=Skill.GENERAL)


# --- answering ---------------------------------------------------------------------------------


def _answer(
    state: CallState, intents: tuple[Intent, ...], u: Understanding, ctx: Context
) -> tuple[CallState, list[Part], Pending | None]:
    """Answer each intent; intents whose order is unclear are collected into one question."""
    parts: list[Part] = []
    unclear: list[Intent] = []
    ask: Pending | None = None
    for asked in intents:
        intent = _retarget(asked, state, ctx)
        if intent.name in CONTROL or intent.name not in ANSWERS:
            continue
        order: Order | None = None
        if intent.name in ORDER_INTENTS | ORDER_OPTIONAL:
            picked = pick_order(state, intent, u, ctx)
            if isinstance(picked, Order):
                order = picked
            elif intent.name in ORDER_INTENTS:
                unclear.append(intent)
                ask, part = _unclear(picked, tuple(unclear), ask, state.customer is not None)
                parts += [part] if part else []
                continue
        part = ANSWERS[intent.name](intent, order, u, ctx)
        state = state.absorb(part)
        parts.append(part)
    return state, parts, ask


def _retarget(intent: Intent, state: CallState, ctx: Context) -> Intent:
    """「怎么凑单」 from a caller with an unshipped order is about that order's unmet threshold."""
    if intent.name not in ADD_ON_ASKS or intent.slots.get("promotion") != "凑单" or state.customer is None:
        return intent
    open_orders = [o for o in ctx.shop.orders_for_customer(state.customer.id) if o.status in _UNSHIPPED]
    if not open_orders:
        return intent
    slots = dict(intent.slots)
    if len(open_orders) == 1 and "order_id" not in slots:
        slots["order_id"] = open_orders[0].id  # only an unshipped order can still be topped up
    return Intent("promotion.not_applied", intent.confidence, slots)


def _unclear(
    picked: Ambiguous | Missing | None, intents: tuple[Intent, ...], ask: Pending | None, known: bool
) -> tuple[Pending, Part | None]:
    """The question for intents whose order is unclear (one question for all of them)."""
    if isinstance(picked, Ambiguous):
        return ChooseOrder(intents, picked.candidates), None
    if isinstance(ask, ChooseOrder):
        return replace(ask, intents=intents), None
    if isinstance(picked, Missing):
        return NeedOrderId(intents), Part(render("order.not_found", order_id=picked.order_id))
    if known and ask is None:  # a known caller with no orders under this number
        return NeedOrderId(intents), Part(render("order.none_for_caller"))
    return NeedOrderId(intents), None


def _answer_with(
    state: CallState, intents: tuple[Intent, ...], order: Order, u: Understanding, ctx: Context
) -> tuple[CallState, list[Part]]:
    parts = []
    state = state.touch(order.id)
    for intent in intents:
        part = ANSWERS[intent.name](intent, order, u, ctx)
        state = state.absorb(part)
        parts.append(part)
    return state, parts


# --- replying ----------------------------------------------------------------------------------


def _empathy(u: Understanding) -> str:
    if u.emotion.label is EmotionLabel.ANGRY:
        return render("empathy.angry")
    urgent = any(i.slots.get("urgency") == "high" for i in u.intents)
    return render("empathy.anxious") if u.emotion.label is EmotionLabel.ANXIOUS or urgent else ""


def _reply(
    state: CallState, parts: list[Part], ask: Pending | None, u: Understanding, ctx: Context
) -> tuple[CallState, Actions]:
    names = {i.name for i in u.intents}
    pending = ask or _first_question(parts)
    text = join_parts(parts, ctx)
    if pending is not None:
        question = question_text(pending, ctx)
        text = _empathy(u) + text + question
        state = replace(state, pending=pending)
        return state.say("bot", text, ctx.elapsed), (Ask(text, expect_for(pending, ctx)),)
    if "goodbye" in names:
        text = text + render("goodbye", shop=ctx.info.name)
        return replace(state.say("bot", text, ctx.elapsed), ended=True), (Hangup(text),)
    if not text:
        text = render("greeting") if names == {"greeting"} else render("anything_else")
    else:
        text = _empathy(u) + text
    return state.say("bot", text, ctx.elapsed), (Say(text),)


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


def _first_question(parts: list[Part]) -> Pending | None:
    offers = [p.offer for p in parts if p.offer is not None]
    for kind in (ConfirmChange, NeedOrderId, ChooseOrder, OfferTransfer):
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
    if pending.skill is Skill.LOGISTICS:
        return render("offer.logistics")
    return render("offer.transfer", desk=DESKS[pending.skill.value])


def expect_for(pending: Pending, ctx: Context) -> tuple[str, ...]:
    if isinstance(pending, ChooseOrder):
        return choice_phrases(pending.candidates, ctx)
    if isinstance(pending, NeedOrderId):
        return tuple(dict.fromkeys(s.prefix for s in ctx.info.order_numbers.shapes if s.prefix))
    return ("好的", "是的", "对", "可以", "确认", "不用", "不要", "算了")


def _failed(state: CallState, u: Understanding, ctx: Context) -> tuple[CallState, Actions]:
    """Nothing understood: re-prompt (or re-ask the open question) once, then a human."""
    state = replace(state, failed=state.failed + 1)
    if state.failed >= 2:
        decision = policy.decide(policy.FAILED, state, ())
        return _handover(state, decision, [], u, ctx)
    if state.pending is not None:
        text = render("reprompt") + question_text(state.pending, ctx)
        return state.say("bot", text, ctx.elapsed), (Ask(text, expect_for(state.pending, ctx)),)
    text = render("reprompt")
    return state.say("bot", text, ctx.elapsed), (Ask(text),)


def _handover(
    state: CallState, decision: policy.Decision, parts: list[Part], u: Understanding, ctx: Context
) -> tuple[CallState, Actions]:
    """Transfer with a handoff packet, or book a callback outside agent hours."""
    facts = join_parts(parts, ctx)
    empathy = _empathy(u) if decision.code != policy.FAILED else ""
    state = replace(state, pending=None)
    if not policy.in_agent_hours(ctx):
        text = empathy + facts + policy.callback_text(ctx, decision.skill)
        state = state.say("bot", text, ctx.elapsed)
        return replace(state, callback=policy.request(decision, state, ctx)), (Say(text),)
    key = "failed.transfer" if decision.code == policy.FAILED else "transfer"
    text = empathy + facts + render(key, desk=DESKS[decision.skill.value])
    state = state.say("bot", text, ctx.elapsed)
    req = policy.request(decision, state, ctx)
    return replace(state, transfer=req, ended=True), (Transfer(text, req),)


def contact(state: CallState, ctx: Context) -> Contact | None:
    """What this call was about, for the customer's history (None for an unknown caller)."""
    if state.customer is None:
        return None
    asked = list(dict.fromkeys(policy.INTENT_WORDS[i.name] for i in state.intents if i.name in policy.INTENT_WORDS))
    parts = ["来电" + join_list(asked) if asked else "来电未说明诉求"]
    parts += list(state.notes)
    if state.transfer is not None:
        parts.append(f"已转{DESKS[state.transfer.skill.value]}")
    elif state.callback is not None:
        parts.append(f"已登记{DESKS[state.callback.skill.value]}回电")
    complaint = any(i.name == "complaint" for i in state.intents) or (
        state.transfer is not None and state.transfer.skill is Skill.COMPLAINT
    )
    return Contact(ctx.now, "phone", "，".join(parts), complaint)
