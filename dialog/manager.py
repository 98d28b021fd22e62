"""The dialog manager: a pure function of call state and what the caller said.

``start(caller, ctx) -> (state, actions)`` identifies the caller and greets them;
``handle(state, understanding, ctx) -> (state, actions)`` answers every need of one turn in one
reply, asks which order when that is genuinely unclear, confirms before changing an order, and
transfers (``dialog.policy``) when a human should take over. All shop access goes through
``ctx.shop`` and only reads: a confirmed change is returned as a ``ChangeOrder`` action, which the
session carries out through ``ShopPort.change_order`` and reports back with
``changed(state, records, error, ctx)``. An order is told about or changed only for its owner or a
caller who passed verification (``dialog.access``). ``policy.contact(state, ctx)`` is the record of
the call for ``ShopPort.record_contact``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from core.errors import IvrError, ProtocolError
from core.shop import AGENT_NOTES, ChangeRecord, Customer, Order
from core.types import (
    Ask,
    ChangeOrder,
    DialogAction,
    Hangup,
    Intent,
    Say,
    Skill,
    Transfer,
    Understanding,
)
from dialog import access, followups, policy
from dialog.answers import ANSWERS, TOPIC, change_words, kb_answer
from dialog.orders import Ambiguous, Missing, choice_phrases, pick_order, resolve_choice
from dialog.refusals import refusal_text
from dialog.replies import DESKS, caller_name, render
from dialog.speak import compose, empathy, first_question, join_parts, offer_for, question_text
from dialog.state import (
    Applying,
    CallState,
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
    Turn,
    Verify,
)

Actions = tuple[DialogAction, ...]

ORDER_INTENTS = frozenset(
    {
        "logistics.track", "logistics.ship_time", "logistics.carrier", "logistics.expedite", "promotion.not_applied",
        "order.modify", "order.cancel", "order.status", "aftersale.refund_status",
    }
)  # fmt: skip
ORDER_OPTIONAL = frozenset(
    {"aftersale.return", "aftersale.exchange", "aftersale.damage", "invoice", "promotion.inquiry"}
)
CONTROL = frozenset({"greeting", "goodbye", "affirm", "deny", "human_agent", "complaint", "other"})
MIN_CONFIDENCE = 0.3  # the main need of a turn
MIN_SECONDARY = 0.7  # every further need: below this the classifier is mostly echoing the main one
_ORDER_ID = re.compile(r"(?<![A-Z0-9])(?!1[3-9]\d{9}(?!\d))[A-Z]{0,4}\d{8,}(?!\d)", re.IGNORECASE)  # any shop's
RECENT_CONTACT = timedelta(days=30)


def start(caller: str | None, ctx: Context) -> tuple[CallState, Actions]:
    """Identify the caller by caller ID and greet them, using their history."""
    customer = ctx.shop.customer_by_phone(caller) if caller else None
    text = greeting(customer, ctx)
    return CallState(customer=customer, caller=caller or None).say("bot", text, ctx.elapsed), (Say(text),)


def greeting(customer: Customer | None, ctx: Context) -> str:
    if customer is None:
        return render("greet.unknown", shop=ctx.info.name)
    history = ""
    if policy.past_complaints(customer):
        history = render("greet.complained", name=caller_name(customer))
    elif calls := [c for c in customer.history if c.channel != AGENT_NOTES]:  # notes are the agents' own
        last = max(calls, key=lambda c: c.at)
        if ctx.now - last.at <= RECENT_CONTACT:
            history = render("greet.history", summary=last.summary.split("，")[0])
    return render("greet.known", name=caller_name(customer), shop=ctx.info.name, history=history)


def handle(state: CallState, u: Understanding, ctx: Context) -> tuple[CallState, Actions]:
    """One caller turn in, the new state and what to say or do out."""
    if state.ended:
        raise ProtocolError("expected a live call, got a caller turn after the call ended")
    if isinstance(state.pending, Applying):
        raise ProtocolError("expected changed() for the ChangeOrder in flight, got a caller turn")
    u = followups.reread(u)
    state = replace(state.say("caller", u.text, ctx.elapsed), turns=(*state.turns, Turn(u.text, u.intents, u.emotion)))
    pending, state = state.pending, replace(state, pending=None)
    intents = followups.carry(_needs(u, pending), state, u, ctx)
    if isinstance(pending, ConfirmChange) and _answer_is(intents, "affirm"):
        return _confirmed(state, pending, intents, u, ctx)
    if isinstance(pending, OfferCallback):
        return _wait_or_callback(state, intents, u, ctx)
    parts: list[Part] = []
    offered: Skill | None = None
    code: str | None = None
    if pending is not None:
        settled = _settle(pending, state, u, intents, ctx)
        if settled is None:
            return _not_understood(replace(state, pending=pending), u, ctx)
        state, parts, intents, offered, code = settled
    elif not intents:
        return _not_understood(state, u, ctx)
    state = replace(state, failed=0)
    return _respond(state, parts, intents, u, ctx, offered, code)


def _respond(
    state: CallState,
    parts: list[Part],
    intents: tuple[Intent, ...],
    u: Understanding,
    ctx: Context,
    offered: Skill | None = None,
    code: str | None = None,
) -> tuple[CallState, Actions]:
    state, answered, ask = _answer(state, intents, u, ctx)
    parts += answered
    code = code or (policy.OFFER if offered else policy.rule(state, u))
    if code == policy.COMPLAINT:
        state = followups.complained_about(state, u, ctx)
    if code is not None:
        topics = tuple(TOPIC[i.name] for i in intents if i.name in TOPIC)
        return _handover(state, policy.decide(code, state, topics, offered), parts, u, ctx)
    return _reply(state, parts, ask, u, ctx)


def _answer_is(intents: tuple[Intent, ...], name: str) -> bool:
    names = {i.name for i in intents}
    other = "deny" if name == "affirm" else "affirm"
    return name in names and other not in names


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
    yes_no = ConfirmChange | OfferTransfer | OfferDetails | OfferCallback
    if isinstance(pending, yes_no) and not names & {"affirm", "deny"} and len(text) <= 6:
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

Settled = tuple[CallState, list[Part], tuple[Intent, ...], Skill | None, str | None]
_CLOSED = ChooseOrder | NeedOrderId | CollectAddress | CollectVariant | Verify | OfferDetails


def _settle(
    pending: Pending, state: CallState, u: Understanding, intents: tuple[Intent, ...], ctx: Context
) -> Settled | None:
    """Resolve what the bot asked last turn; None when the turn neither answers it nor asks anything."""
    rest = tuple(i for i in intents if i.name not in ("affirm", "deny"))
    if isinstance(pending, _CLOSED) and _answer_is(intents, "deny") and not rest:  # 「算了不用了」
        key = "anything_else" if isinstance(pending, OfferDetails) else "pending.dropped"
        return state, [Part(render(key))], (), None, None
    if isinstance(pending, Verify):
        return _verified(pending, state, u, rest, ctx)
    if isinstance(pending, CollectAddress) and followups.address_from(u) is not None:
        return _address_given(pending, state, u, ctx)
    if isinstance(pending, CollectVariant):
        return _variant_given(pending, state, u, rest, ctx)
    if isinstance(pending, OfferDetails) and _answer_is(intents, "affirm"):
        return state, [Part(pending.text, kb_ids=pending.kb_ids)], rest, None, None
    if isinstance(pending, ConfirmChange | OfferTransfer) and _answer_is(intents, "deny"):
        key = "modify.kept" if isinstance(pending, ConfirmChange) else "anything_else"
        return state, [Part(render(key))], rest, None, None
    if isinstance(pending, OfferTransfer) and _answer_is(intents, "affirm"):
        return state, [], rest, pending.skill, None
    if isinstance(pending, ChooseOrder | NeedOrderId):
        order = _chosen(pending, u, ctx)
        if isinstance(order, Order):
            # 「围巾那单」 answers the question; what the classifier half-reads into it is an echo
            echo = {p.name for p in pending.intents} | {"order.status"}
            rest = tuple(i for i in rest if i.name not in echo and i.confidence >= MIN_SECONDARY)
            if access.access(state, order) is None:
                return state, [Part("", offer=Verify(order.id, pending.intents))], rest, None, None
            state, parts = _answer_with(state, pending.intents, order, u, ctx)
            return state, parts, rest, None, None
        if isinstance(order, Missing):
            part = Part(render("order.not_found", order_id=order.order_id), offer=pending)
            return state, [part], rest, None, None
    return (state, [], rest, None, None) if rest else None


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


def _verified(pending: Verify, state: CallState, u: Understanding, rest: tuple[Intent, ...], ctx: Context) -> Settled:
    """The answer to the verification question: right → answer what was asked; wrong → again, then a human."""
    order = ctx.shop.order(pending.order_id)
    how = access.verify(order, u, ctx) if order is not None else None
    if order is not None and how is not None:
        state = replace(state, verified=(*state.verified, (order.customer_id, how)), verify_failures=0)
        state, parts = _answer_with(state, pending.intents, order, u, ctx)
        return state, [Part(render("verify.ok")), *parts], (), None, None
    if not access.looks_like_an_answer(u, bool(rest)):
        return state, [], rest, None, None  # a new request instead of an answer: the order stays closed
    state = replace(state, verify_failures=state.verify_failures + 1)
    if state.verify_failures >= access.MAX_FAILURES:
        state = replace(state, notes=(*state.notes, f"{pending.order_id}身份核验未通过，未透露订单信息"))
        return state, [Part(render("verify.failed"))], (), None, policy.VERIFY_FAILED
    return state, [Part(render("verify.wrong"), offer=pending)], (), None, None


def _address_given(pending: CollectAddress, state: CallState, u: Understanding, ctx: Context) -> Settled | None:
    """The words after 「新地址是哪里？」 are the address: read it back for confirmation."""
    address = followups.address_from(u)
    if address is None:
        return None
    confirm = ConfirmChange(pending.order_id, (("address", address),))
    return state, [Part("", pending.order_id, offer=confirm)], (), None, None


def _variant_given(
    pending: CollectVariant, state: CallState, u: Understanding, rest: tuple[Intent, ...], ctx: Context
) -> Settled | None:
    """「黑色的」 after 「想换成什么颜色？」: the change, checked against the catalogue and confirmed."""
    slots = {k: v for i in u.intents for k, v in i.slots.items() if k in ("color", "size", "product")}
    order = ctx.shop.order(pending.order_id)
    if order is None or not ({"color", "size"} & set(slots)):
        return (state, [], rest, None, None) if rest else None
    wanted = Intent("order.modify", 0.9, {**slots, "order_id": order.id})
    state, parts = _answer_with(state, (wanted,), order, u, ctx)
    return state, parts, (), None, None


def _confirmed(
    state: CallState, pending: ConfirmChange, intents: tuple[Intent, ...], u: Understanding, ctx: Context
) -> tuple[CallState, Actions]:
    """「对」 to 「确认把…改成…吗？」: hand the change to the session (``changed`` tells the caller)."""
    order = ctx.shop.order(pending.order_id)
    who = access.access(state, order) if order is not None else None
    if order is None or who is None:  # never reached through the dialog: a change is only offered to the entitled
        note = f"{pending.order_id}修改请求未核验身份，已拒绝"
        state = replace(state, notes=(*state.notes, note), failed=0)
        return _reply(state, [Part(render("verify.needed_to_change"))], None, u, ctx)
    steps = (("sku", pending.sku),) if pending.sku else pending.changes
    rest = tuple(i for i in intents if i.name not in ("affirm", "deny"))
    state = replace(state, pending=Applying(pending, rest, u), failed=0)
    return state, (ChangeOrder(pending.order_id, steps, who),)


def changed(
    state: CallState, records: Sequence[ChangeRecord], error: IvrError | None, ctx: Context
) -> tuple[CallState, Actions]:
    """How the session's ``ChangeOrder`` went: tell the caller, then answer the rest of their turn."""
    applying = state.pending
    if not isinstance(applying, Applying):
        raise ProtocolError(f"expected a ChangeOrder in flight, got {type(applying).__name__}")
    change = applying.change
    state = replace(state, pending=None, changes=state.changes + tuple(records))
    if error is not None:
        part = Part(render("modify.failed", why=refusal_text(error, ctx.today)), change.order_id)
    else:
        what, new = change_words(change, ctx)
        note = f"{change.order_id}已把{what}改成{new}"
        part = Part(render("modify.done", what=what, new=new), change.order_id, note=note, skill=Skill.GENERAL)
    state = state.absorb(part)
    return _respond(state, [part], applying.rest, applying.u, ctx)


# --- answering ---------------------------------------------------------------------------------


def _answer(
    state: CallState, intents: tuple[Intent, ...], u: Understanding, ctx: Context
) -> tuple[CallState, list[Part], Pending | None]:
    """Answer each intent; intents whose order is unclear (or not yet the caller's to hear) are
    collected into one question."""
    parts: list[Part] = []
    unclear: list[Intent] = []
    ask: Pending | None = None
    for asked in intents:
        intent = followups.retarget(asked, state, u, ctx)
        if intent.name in CONTROL:
            continue
        if intent.name not in ANSWERS:
            parts.append(kb_answer(intent, u, ctx))  # a question the shop's policies answer
            continue
        order: Order | None = None
        if intent.name in ORDER_INTENTS | ORDER_OPTIONAL:
            picked = pick_order(state, intent, u, ctx)
            if isinstance(picked, Order) and access.access(state, picked) is None:
                ask = _verify_ask(ask, picked, intent)
                continue
            if isinstance(picked, Order):
                order = picked
            elif intent.name in ORDER_INTENTS:
                unclear.append(intent)
                ask, part = _unclear(picked, tuple(unclear), ask, state.customer is not None)
                parts += [part] if part else []
                continue
        part = ANSWERS[intent.name](intent, order, u, ctx)
        state = followups.remember(state.absorb(part), intent)
        parts.append(part)
    return state, parts, ask


def _verify_ask(ask: Pending | None, order: Order, intent: Intent) -> Pending:
    if isinstance(ask, Verify) and ask.order_id == order.id:
        return replace(ask, intents=(*ask.intents, intent))
    return Verify(order.id, (intent,))


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
        state = followups.remember(state.absorb(part), intent)
        parts.append(part)
    return state, parts


# --- replying ----------------------------------------------------------------------------------


def _reply(
    state: CallState, parts: list[Part], ask: Pending | None, u: Understanding, ctx: Context
) -> tuple[CallState, Actions]:
    names = {i.name for i in u.intents}
    pending = ask or first_question(parts)
    body = join_parts(parts, ctx)
    lead = empathy(u) if pending is not None or body else ""
    if pending is None and "goodbye" in names:
        text = compose(body, render("goodbye", shop=ctx.info.name), _said(state), lead).text
        return replace(state.say("bot", text, ctx.elapsed), ended=True), (Hangup(text),)
    if pending is None and not body:
        body = render("greeting") if names == {"greeting"} else render("anything_else")
    question = question_text(pending, ctx) if pending is not None else ""
    spoken = compose(body, question, _said(state), lead)
    if spoken.held_back and pending is None:  # details only when asked
        spoken = compose(body, render("offer.details"), _said(state), lead)
        offer = offer_for(spoken.held_back, parts, ctx)
        spoken = compose(body, offer, _said(state), lead)
        pending = OfferDetails(spoken.held_back, question=offer)
    state = replace(state, pending=pending).say("bot", spoken.text, ctx.elapsed)
    if pending is not None:
        return state, (Ask(spoken.text, expect_for(pending, ctx)),)
    return state, (Say(spoken.text),)


def _said(state: CallState) -> tuple[str, ...]:
    return tuple(line.text for line in state.transcript if line.speaker == "bot")


def _fit(body: str, closing: str) -> str:
    """``body`` cut to the phone's length, then ``closing`` (a re-asked question, a transfer)."""
    return compose(body, closing).text


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
        text = _fit(render("reprompt.short"), question_text(state.pending, ctx))
        return state.say("bot", text, ctx.elapsed), (Ask(text, expect_for(state.pending, ctx)),)
    text = render("reprompt")
    return state.say("bot", text, ctx.elapsed), (Ask(text),)


def _handover(
    state: CallState, decision: policy.Decision, parts: list[Part], u: Understanding, ctx: Context
) -> tuple[CallState, Actions]:
    """Transfer with a handoff packet, or book a callback outside agent hours.

    The ``Transfer`` also carries what to say if no agent is free (``busy_text``): the session
    then books a callback through ``no_agent`` instead of claiming a transfer.
    """
    facts = join_parts(parts, ctx)
    if decision.code not in (policy.FAILED, policy.VERIFY_FAILED):
        facts = empathy(u) + facts
    state = replace(state, pending=None)
    if state.callback is not None:  # booked already (nobody was free, or after hours): no second promise
        text = _fit(facts, render("callback.already", desk=DESKS[state.callback.skill.value]))
        return state.say("bot", text, ctx.elapsed), (Say(text),)
    reachable = policy.callback_number(state) is not None
    if not policy.in_agent_hours(ctx):
        if not reachable:  # no number to ring: when to call again, and no promise
            text = _fit(facts, render("callback.closed") + policy.call_again_text(ctx))
            state = state.say("bot", text, ctx.elapsed)
            return replace(state, missed=state.missed or policy.request(decision, state, ctx)), (Say(text),)
        text = _fit(facts, render("callback.closed") + policy.callback_text(ctx, decision.skill))
        state = state.say("bot", text, ctx.elapsed)
        booked = replace(state, callback=policy.request(decision, state, ctx), promised=policy.callback_when(ctx))
        return booked, (Say(text),)
    key = "failed.transfer" if decision.code == policy.FAILED else "transfer"
    text = _fit(facts, render(key, desk=DESKS[decision.skill.value]))
    later = (
        policy.callback_text(ctx, decision.skill, busy=True) if reachable else policy.call_again_text(ctx, busy=True)
    )
    busy = _fit(facts, render("callback.busy") + later)
    state = state.say("bot", text, ctx.elapsed)
    req = policy.request(decision, state, ctx)
    return replace(state, transfer=req, ended=True), (Transfer(text, req, busy),)


def no_agent(state: CallState, transfer: Transfer, ctx: Context) -> tuple[CallState, Actions]:
    """Nobody can take ``transfer``: the caller hears its apology and callback instead (its
    ``busy_text``), the request becomes a callback, and the bot goes on serving the call."""
    req = state.transfer
    if req is None:
        raise ProtocolError("expected a transfer to cancel, got a call with none")
    busy = transfer.busy_text
    lines = state.transcript
    if transfer.text and lines and lines[-1].speaker == "bot" and lines[-1].text == transfer.text:
        lines = lines[:-1]  # the transfer sentence was not said (no agent at all): the apology instead
    state = replace(state, transcript=lines, transfer=None, pending=None, ended=False)
    if policy.callback_number(state) is not None:
        state = replace(state, callback=req, promised=policy.callback_when(ctx, busy=True))
    else:  # busy_text asked them to call again: no promise, and the call is not served
        state = replace(state, missed=state.missed or req)  # (the first: why they wanted a human)
    return state.say("bot", busy, ctx.elapsed), (Say(busy),)


def queued(
    state: CallState, transfer: Transfer, position: int, wait_s: float | None, *, offer_callback: bool = False
) -> tuple[CallState, Actions]:
    """The caller waits in the agents' queue: the transfer sentence also says their place and, when
    there is a basis for it, the expected wait (``position`` is 1-based). ``offer_callback`` (the
    wait is long): it also asks whether we should call back instead (``OfferCallback``), and the
    call goes on until the caller answers."""
    text = transfer.text + queue_text(position, wait_s)
    if offer_callback and policy.callback_number(state) is not None:  # (no number: nothing to offer)
        text += render("transfer.offer_callback")
        state = replace(state, pending=OfferCallback(), ended=False)
    lines = state.transcript
    if lines and lines[-1].speaker == "bot" and lines[-1].text == transfer.text:
        lines = (*lines[:-1], replace(lines[-1], text=text))
    return replace(state, transcript=lines), (replace(transfer, text=text),)


def _wait_or_callback(
    state: CallState, intents: tuple[Intent, ...], u: Understanding, ctx: Context
) -> tuple[CallState, Actions]:
    """The answer to 「要回电吗？」: yes books the callback and ends the call (the session takes the
    caller out of the queue); anything else — no, 「我等着」, a word we did not catch — keeps their
    place: they asked for a person, and holding on is what they had before the question."""
    req = state.transfer
    if req is None:
        raise ProtocolError("expected a queued transfer to answer about, got a call with none")
    text = (u.normalized or u.text).strip()
    call_me = _unnegated(text, _CALL_ME) or any(w in text for w in _WONT_WAIT)  # 「不用等了，回电吧」「等不了」
    waits = "等" in text and not call_me  # 「我等着」「行，我等」
    if call_me or (_answer_is(intents, "affirm") and not waits):
        callback = policy.callback_text(ctx, req.skill, busy=True)
        said = render("callback.chosen", callback=callback)
        promised = policy.callback_when(ctx, busy=True)
        state = replace(state, transfer=None, callback=req, promised=promised, ended=True, failed=0)
        return state.say("bot", said, ctx.elapsed), (Hangup(said),)
    said = render("transfer.hold_on")
    return replace(state.say("bot", said, ctx.elapsed), ended=True, failed=0), (Say(said),)


_CALL_ME = ("回电", "打回", "回拨", "打给我", "打过来")
_WONT_WAIT = ("不等", "不想等", "不用等", "等不了", "不能等", "没法等")


def _unnegated(text: str, words: Sequence[str]) -> bool:
    """One of ``words`` is in ``text`` without 不/别/没 just before it (「回电吧」, not 「不用回电」)."""
    for word in words:
        at = text.find(word)
        while at >= 0:
            if not any(no in text[max(0, at - 2) : at] for no in "不别没"):
                return True
            at = text.find(word, at + 1)
    return False


def queue_text(position: int, wait_s: float | None) -> str:
    """「您前面还有2位，大约要等3分钟。」 (or 「您排在第一位…」)."""
    if position <= 1:
        return render("transfer.next")
    if wait_s is None:
        wait = render("transfer.wait_unknown")
    elif wait_s < 60:
        wait = render("transfer.wait_soon")
    else:
        wait = render("transfer.wait_minutes", minutes=str(round(wait_s / 60)))
    return render("transfer.queue", ahead=str(position - 1), wait=wait)
