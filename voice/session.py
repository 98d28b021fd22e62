"""One call through the hotline: the per-call pipeline a live call and ``ivr call`` share.

A turn of caller audio goes VAD → ASR → prosody (``Speech``), its text goes to the understander,
the ``Understanding`` to the pure dialog manager. The session carries out what the dialog decides:
a ``ChangeOrder`` through ``ShopPort.change_order`` (the result goes back to ``manager.changed``,
so a refusal is told to the caller), a ``Transfer`` through the agents' dispatcher
(``voice.transfers.TransferPort``): the handoff packet is stored with the call and the caller is
queued for the best-skilled agent — an agent rung at once, or the caller's place and expected
wait added to the transfer sentence; when that wait is ``callback_offer_s`` or longer the caller
is asked whether we should call back instead (a yes takes them out of the queue). With no agent
signed in who could take it (or the queue out of reach) the caller hears the apology and the booked
callback instead, and the bot goes on serving the call: "转接" is said only to a caller who is
queued. A live call then waits for the agent (``voice.live_transfer``) and tells the
session how it went (``agent_connected`` / ``no_agent_came`` / ``left_queue``). Each turn reports
how long each stage took. ``end()`` withdraws a transfer still waiting, records the call in the
customer's history and says how it ended: resolved, transferred, callback or abandoned.

Blocking: ``hear_audio`` runs the recogniser inline; a live call on an event loop calls it in an
executor. One session per call; not thread-safe.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

from core.clock import Clock
from core.errors import IvrError, ProtocolError
from core.shop import Agent, ChangeRecord, Customer, ShopPort
from core.types import (
    AudioFrame,
    ChangeOrder,
    DialogAction,
    Hangup,
    Prosody,
    Transfer,
    TransferRequest,
    Understanding,
    Utterance,
    mask_phone,
)
from dialog import manager, policy
from dialog.state import (
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
    Verify,
)
from routing.callbacks import Callback, Callbacks
from routing.dispatch import Placement
from voice.handoff_packet import packet
from voice.transfers import TransferPort, queued_call

log = logging.getLogger(__name__)

OUTCOMES = ("resolved", "transferred", "callback", "abandoned")


class Expectation(StrEnum):
    """What the dialog waits for next; a live call picks its end-of-turn wait from it."""

    FREE = "free"  # anything: a new question
    YES_NO = "yes_no"  # a confirmation or an offer: 是 / 不用 comes fast
    CHOICE = "choice"  # which of a few orders
    DIGITS = "digits"  # dictated or keyed in (an order number, phone digits, an address): callers pause


class Understander(Protocol):
    def understand(
        self, text: str, now: datetime, prosody: Prosody | None = None, context: str | None = None
    ) -> Understanding: ...


class Speech(Protocol):
    """The speech path of one call: caller audio of one turn to an utterance with prosody."""

    def transcribe(self, frame: AudioFrame) -> Utterance: ...


class TurnSpeech:
    """Turn-at-a-time speech for one call: each turn's recording goes through ``voice.speech``.

    Every segment of the turn is recognised; the texts are joined and the prosody is that of the
    turn's longest segment, measured against one baseline for the whole call. Blocks (ASR runs
    inline): a live call on an event loop calls it in an executor.
    """

    def __init__(self, engine: Any, *, vad_aggressiveness: int = 2) -> None:
        from asr.prosody import ProsodyTracker

        self.engine = engine
        self.vad_aggressiveness = vad_aggressiveness
        self.tracker = ProsodyTracker()

    def transcribe(self, frame: AudioFrame) -> Utterance:
        from voice.speech import transcribe

        heard = transcribe(self.engine, frame, vad_aggressiveness=self.vad_aggressiveness, tracker=self.tracker)
        if not heard:
            return Utterance("", confidence=0.0)
        main = max(heard, key=lambda u: u.prosody.voiced_seconds if u.prosody else 0.0)
        confidence = sum(u.confidence for u in heard) / len(heard)
        words = tuple(w for u in heard for w in u.words)
        text = "".join(u.text for u in heard)
        return Utterance(text, heard[0].start, heard[-1].end, confidence, words, main.prosody)


@dataclass(frozen=True, slots=True)
class TurnResult:
    heard: str
    understanding: Understanding
    prosody: Prosody | None
    actions: tuple[DialogAction, ...]
    latency_ms: Mapping[str, float]  # asr, understand, dialog, total
    ended: bool  # the bot is done with this call (hung up, transferred or callback booked)

    @property
    def reply(self) -> str:
        return "".join(a.text for a in self.actions)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    type: str  # one of OUTCOMES
    skill: str | None = None
    agent: Agent | None = None
    priority: int | None = None
    summary: tuple[str, ...] = ()
    reason: str | None = None
    request: TransferRequest | None = field(default=None, repr=False)


class CallSession:
    """The state of one call and the parts that serve it; ``greet()`` first, then turns, then ``end()``."""

    def __init__(
        self,
        shop: ShopPort,
        understander: Understander,
        clock: Clock,
        speech: Speech | None = None,
        *,
        caller: str | None = None,
        call_id: str | None = None,
        transfers: TransferPort | None = None,
        channel: str = "cli",
        audio_url: str | None = None,
        callback_offer_s: float | None = None,
        callbacks: Callbacks | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.shop, self.understander, self.clock, self.speech = shop, understander, clock, speech
        self.caller = caller
        self.call_id = call_id or uuid.uuid4().hex[:12]
        self.transfers = transfers  # None: no agents reachable (every transfer becomes a callback)
        self.channel = channel  # twilio | sip | phone | api | cli: shown to the agent
        self.audio_url = audio_url  # where a browser agent's audio reaches this call (live calls)
        self.callback_offer_s = callback_offer_s  # an expected wait this long: a callback is offered first
        self.callbacks = callbacks  # where a callback booked by this call goes for the agents (None: nowhere)
        self.placement: Placement | None = None  # the transfer's place with the agents
        self.agent: Agent | None = None  # rung at once, or connected by the live call
        self._transfer: Transfer | None = None
        self._was_queued = False  # this call's transfer was offered or queued (a call is queued once)
        self._connected = False  # an agent took the call (the live call bridged or handed it over)
        self._left_queue = False  # the caller hung up while waiting for an agent
        self._timer = timer
        self._started = clock.monotonic()
        self._state: CallState | None = None
        self._outcome: CallOutcome | None = None
        self.heard: list[tuple[str, bool]] = []  # reply sentences played, and whether the caller heard them whole
        self._before: CallState | None = None  # the state before the last turn, while it may be retracted

    @property
    def started(self) -> bool:
        """The caller has been greeted (``greet()`` ran)."""
        return self._state is not None

    @property
    def state(self) -> CallState:
        if self._state is None:
            raise ProtocolError("expected greet() before anything else, got a call that has not started")
        return self._state

    @property
    def customer(self) -> Customer | None:
        return self.state.customer

    @property
    def ended(self) -> bool:
        return self._outcome is not None or (self._state is not None and self._state.ended)

    def expecting(self) -> Expectation:
        """What the pending question (if any) expects the caller to say next."""
        pending = self._state.pending if self._state is not None else None
        if isinstance(pending, ConfirmChange | OfferTransfer | OfferDetails | OfferCallback):
            return Expectation.YES_NO
        if isinstance(pending, NeedOrderId | Verify | CollectAddress):
            return Expectation.DIGITS
        if isinstance(pending, ChooseOrder | CollectVariant):
            return Expectation.CHOICE
        return Expectation.FREE

    def note_heard(self, sentence: str, complete: bool) -> None:
        """A sentence of a reply reached the caller (``complete``) or was cut off by barge-in."""
        self.heard.append((sentence, complete))

    def _ctx(self) -> Context:
        return Context.create(self.shop, self.clock.now(), self.clock.monotonic() - self._started)

    def greet(self) -> tuple[DialogAction, ...]:
        """Identify the caller by caller ID and say hello."""
        if self._state is not None:
            raise ProtocolError("expected greet() once per call, got a second greet()")
        self._state, actions = manager.start(self.caller, self._ctx())
        return actions

    def hear_text(self, text: str) -> TurnResult:
        """A caller turn already in text (the CLI's --say, a chat channel, a test)."""
        return self._turn(Utterance(text.strip()), 0.0, self._timer())

    def hear(self, utterance: Utterance, asr_ms: float = 0.0) -> TurnResult:
        """A caller turn already recognised (a live call's speech path), with its prosody."""
        return self._turn(utterance, asr_ms, self._timer())

    def hear_audio(self, frame: AudioFrame) -> TurnResult:
        """A caller turn as audio: VAD → ASR → prosody → understanding → dialog."""
        if self.speech is None:
            raise ProtocolError("expected a speech path for an audio turn, got a session without one")
        started = self._timer()
        utterance = self.speech.transcribe(frame)
        return self._turn(utterance, (self._timer() - started) * 1000, started)

    def _turn(self, utterance: Utterance, asr_ms: float, started: float) -> TurnResult:
        state = self.state
        if self.ended:
            raise ProtocolError("expected a live call, got a caller turn after the call ended")
        ctx = self._ctx()
        t0 = self._timer()
        said = next((line.text for line in reversed(state.transcript) if line.speaker == "bot"), None)
        understanding = self.understander.understand(utterance.text, ctx.now, utterance.prosody, context=said)
        t1 = self._timer()
        before = state
        state, actions = manager.handle(state, understanding, ctx)
        state, actions = self._carry_out(state, actions, ctx)
        if before.transfer is not None and state.transfer is None and state.callback is not None:
            self._chose_callback()
        t2 = self._timer()
        undoable = not state.ended and not any(isinstance(a, ChangeOrder | Transfer | Hangup) for a in actions)
        undoable = undoable and (state.transfer, state.callback) == (before.transfer, before.callback)
        self._before = self._state if undoable else None
        self._state = state
        latency = {"asr": asr_ms, "understand": (t1 - t0) * 1000, "dialog": (t2 - t1) * 1000}
        latency["total"] = (t2 - started) * 1000
        rounded = MappingProxyType({k: round(v, 1) for k, v in latency.items()})
        return TurnResult(utterance.text, understanding, utterance.prosody, actions, rounded, state.ended)

    def retract_last_turn(self) -> bool:
        """Undo the last caller turn (the caller had not finished it): the state goes back to before it.

        Only a turn that changed nothing outside the dialog can be undone: not one whose actions
        changed an order, transferred or hung up. ``True`` when the turn was undone; the retracted
        turn leaves no line in the transcript (the caller's whole turn is heard next).
        """
        if self._before is None or self._outcome is not None:
            return False
        self._state, self._before = self._before, None
        return True

    def _carry_out(
        self, state: CallState, actions: tuple[DialogAction, ...], ctx: Context
    ) -> tuple[CallState, tuple[DialogAction, ...]]:
        """Make the changes the dialog asked for and route its transfer; the dialog hears how it went."""
        done: list[DialogAction] = []
        while actions and isinstance(actions[0], ChangeOrder):
            records, error = self._change(actions[0], ctx)
            done.append(actions[0])
            state, actions = manager.changed(state, records, error, ctx)
        transfer = next((a for a in actions if isinstance(a, Transfer)), None)
        if transfer is not None and state.transfer is not None and self._was_queued:
            # queued once already (they held on, then chose a callback or nobody came): not a second
            # time in one call — the apology instead, never a 转接 that nothing stands behind
            state, actions = manager.no_agent(state, transfer, ctx)
            return state, (*done, *actions)
        if transfer is not None and state.transfer is not None:
            self._transfer = transfer
            self.placement = placement = self._place(transfer.request, state)
            self._was_queued = placement.status in ("offered", "queued")
            if placement.status == "offered":
                self.agent = placement.agent
            elif placement.status == "queued":
                long_wait = self._long_wait(placement.wait_s)
                queued_state, queued_actions = manager.queued(
                    state, transfer, placement.position or 1, placement.wait_s, offer_callback=long_wait
                )
                state, actions = queued_state, tuple(queued_actions[0] if a is transfer else a for a in actions)
                self._transfer = next(a for a in actions if isinstance(a, Transfer))
            else:
                state, actions = manager.no_agent(state, transfer, ctx)
        return state, (*done, *actions)

    def _long_wait(self, wait_s: float | None) -> bool:
        """Worth offering a callback before holding (an API call has no line to hold: never asked)."""
        if wait_s is None or self.callback_offer_s is None or self.channel == "api":
            return False
        return wait_s >= self.callback_offer_s

    def _change(self, action: ChangeOrder, ctx: Context) -> tuple[list[ChangeRecord], IvrError | None]:
        """Make each step; stop at the first the shop refuses (its error goes back to the dialog)."""
        records: list[ChangeRecord] = []
        try:
            for field_name, value in action.steps:
                record = self.shop.change_order(
                    action.order_id, field_name, value, ctx.now, requested_by=action.requested_by
                )
                records.append(record)
        except IvrError as err:
            return records, err
        return records, None

    def _place(self, request: TransferRequest, state: CallState) -> Placement:
        """Queue the caller with the handoff packet; ``no_agent`` when that cannot be done."""
        if self.transfers is None:
            return Placement("no_agent")
        customer = state.customer
        facts = {"dialect": customer.dialect if customer else None, "vip": _vip(customer)}
        entry = queued_call(self.call_id, request, self.transfers.server, self.transfers.now(), **facts)
        data = packet(
            self.call_id, request, self.shop,
            caller=self.caller, channel=self.channel, customer=customer, audio_url=self.audio_url,
        )  # fmt: skip
        try:
            return self.transfers.place(entry, data)
        except IvrError as err:  # the queue is out of reach: a callback, never a transfer nobody will take
            log.warning("transfer not placed, booking a callback: %s", err)
            return Placement("no_agent")

    @property
    def waiting_for_agent(self) -> bool:
        """The caller was told they are being transferred and no agent has taken the call yet."""
        placed = self.placement is not None and self.placement.status in ("offered", "queued")
        return (
            placed
            and not self._connected
            and not self._left_queue
            and self._state is not None
            and (self._state.transfer is not None)
        )

    def agent_connected(self, agent: Agent) -> None:
        """The live call handed the caller to ``agent``."""
        self.agent, self._connected = agent, True

    def agent_lost(self) -> None:
        """The hand-over to the agent failed: the caller waits for an agent again."""
        self.agent, self._connected = None, False

    def no_agent_came(self) -> str:
        """Nobody took the call in time: it becomes a callback and the bot serves the call again;
        returns the apology to say (the caller's server has withdrawn the queue entry)."""
        if self._transfer is None or self._state is None or self._state.transfer is None:
            raise ProtocolError("expected a call waiting for an agent, got one that is not")
        self._state, actions = manager.no_agent(self._state, self._transfer, self._ctx())
        self.placement, self.agent = Placement("no_agent"), None  # the caller's hold gave up the queue
        return "".join(a.text for a in actions)

    def _chose_callback(self) -> None:
        """The queued caller asked for a callback instead of holding on: out of the agents' queue."""
        if self.transfers is not None and self.placement is not None and self.placement.status != "no_agent":
            self.transfers.withdraw(self.call_id, "客户选择回电")
        self.placement, self.agent = Placement("no_agent"), None

    def left_queue(self) -> None:
        """The caller hung up while waiting for an agent."""
        self._left_queue = True

    def _withdraw(self) -> None:
        """A transfer nobody took yet is withdrawn when the call ends — except an HTTP API call's: it
        has no line to hold, so its transfer stays with the agents, who follow up from the packet."""
        if self.transfers is not None and self.placement is not None and self.placement.status != "no_agent":
            if not self._connected and self.channel != "api":
                self.transfers.withdraw(self.call_id, "来电已挂断" if self._left_queue else "通话已结束")

    def end(self) -> CallOutcome:
        """The call is over (hung up by either side): record it and say how it ended."""
        if self._outcome is not None:
            return self._outcome
        self._withdraw()
        if self._state is None:  # hung up before the greeting: nothing said, nothing to record
            self._outcome = CallOutcome("abandoned", reason="来电在问候前就挂断")
            return self._outcome
        state = self.state
        ctx = self._ctx()
        if state.turns:
            record = policy.contact(state, ctx)
            if record is not None and state.customer is not None:
                self.shop.record_contact(state.customer.id, record)
        self._outcome = self._outcome_of(state)
        if self._outcome.type == "callback":
            self._book_callback(state, ctx)
        return self._outcome

    def _book_callback(self, state: CallState, ctx: Context) -> None:
        """The callback promised to the caller becomes a task on the agents' desk (``routing.callbacks``)."""
        number, request = policy.callback_number(state), state.callback
        if self.callbacks is None or number is None or request is None:
            return
        task = Callback(
            self.call_id, number, state.customer.id if state.customer else None, request.skill.value,
            request.priority, request.reason, request.handoff.summary, state.promised or "稍后", ctx.now,
        )  # fmt: skip
        try:
            self.callbacks.book(task)
        except sqlite3.Error as err:  # the promise must not vanish quietly
            log.error("callback for call %s (%s) not booked: %s", self.call_id, mask_phone(number), err)

    def _outcome_of(self, state: CallState) -> CallOutcome:
        for kind, request in (("transferred", state.transfer), ("callback", state.callback)):
            if request is not None:
                summary = request.handoff.summary
                if kind == "transferred" and self._left_queue:
                    reason = "等待人工时挂断"
                    return CallOutcome(
                        "abandoned", request.skill.value, None, request.priority, summary, reason, request
                    )
                agent = self.agent if kind == "transferred" else None
                return CallOutcome(kind, request.skill.value, agent, request.priority, summary, request.reason, request)
        if state.missed is not None:  # wanted a human, nobody free, no number to call back
            missed = state.missed
            reason = "人工客服忙，来电无回拨号码，已请客户再来电"
            return CallOutcome("abandoned", missed.skill.value, None, missed.priority, missed.handoff.summary, reason)
        if not state.turns or state.pending is not None or state.failed:
            return CallOutcome("abandoned", reason=_abandon_reason(state))
        return CallOutcome("resolved")


def _abandon_reason(state: CallState) -> str:
    if not state.turns:
        return "来电未说话就结束"
    if state.pending is not None:
        return "客户未回答追问就挂断"
    return "未能理解客户诉求"


def _vip(customer: Customer | None) -> bool:
    return customer is not None and customer.vip_level in policy.VIP_LEVELS
