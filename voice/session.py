"""One call through the hotline: the per-call pipeline a live call and ``ivr call`` share.

A turn of caller audio goes VAD → ASR → prosody (``Speech``), its text goes to the understander,
the ``Understanding`` to the pure dialog manager. The session carries out what the dialog decides:
a ``ChangeOrder`` through ``ShopPort.change_order`` (the result goes back to ``manager.changed``,
so a refusal is told to the caller), a ``Transfer`` through agent routing — the agent is reserved
(their load goes up) and released when the call ends; with nobody free the caller hears the
apology and callback offer instead of a transfer. Each turn reports how long each stage took.
``end()`` records the call in the customer's history and says how it ended: resolved,
transferred, callback or abandoned.

Blocking: ``hear_audio`` runs the recogniser inline; a live call on an event loop calls it in an
executor. One session per call; not thread-safe.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, MutableMapping
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
    OfferDetails,
    OfferTransfer,
    Verify,
)
from routing.agents import Assignment, choose_agent

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
        agent_load: MutableMapping[str, int] | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.shop, self.understander, self.clock, self.speech = shop, understander, clock, speech
        self.caller = caller
        self.call_id = call_id or uuid.uuid4().hex[:12]
        self.agent_load = agent_load if agent_load is not None else {}  # agent id -> calls they hold
        self.assignment: Assignment | None = None
        self._holding = False  # a line of the assigned agent is reserved for this call
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
        if isinstance(pending, ConfirmChange | OfferTransfer | OfferDetails):
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
        state, actions = manager.handle(state, understanding, ctx)
        state, actions = self._carry_out(state, actions, ctx)
        t2 = self._timer()
        undoable = not state.ended and not any(isinstance(a, ChangeOrder | Transfer | Hangup) for a in actions)
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
        if transfer is not None and state.transfer is not None and self.assignment is None:
            self.assignment = self._reserve(transfer.request, state)
            if self.assignment is None:
                state, actions = manager.no_agent(state, transfer, ctx)
        return state, (*done, *actions)

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

    def _reserve(self, request: TransferRequest, state: CallState) -> Assignment | None:
        """The best free agent, with a line reserved for this call (released by ``end()``)."""
        dialect = state.customer.dialect if state.customer else None
        assignment = choose_agent(request, self.shop.agents(), self.agent_load, dialect)
        if assignment is not None:
            agent_id = assignment.agent.id
            self.agent_load[agent_id] = self.agent_load.get(agent_id, 0) + 1
            self._holding = True
        return assignment

    def _release(self) -> None:
        if self.assignment is None or not self._holding:
            return
        self._holding = False
        agent_id = self.assignment.agent.id
        held = self.agent_load.get(agent_id, 0) - 1
        if held > 0:
            self.agent_load[agent_id] = held
        else:
            self.agent_load.pop(agent_id, None)

    def end(self) -> CallOutcome:
        """The call is over (hung up by either side): record it and say how it ended."""
        if self._outcome is not None:
            return self._outcome
        self._release()
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
        return self._outcome

    def _outcome_of(self, state: CallState) -> CallOutcome:
        for kind, request in (("transferred", state.transfer), ("callback", state.callback)):
            if request is not None:
                agent = self.assignment.agent if kind == "transferred" and self.assignment else None
                summary = request.handoff.summary
                return CallOutcome(kind, request.skill.value, agent, request.priority, summary, request.reason, request)
        if not state.turns or state.pending is not None or state.failed:
            return CallOutcome("abandoned", reason=_abandon_reason(state))
        return CallOutcome("resolved")


def _abandon_reason(state: CallState) -> str:
    if not state.turns:
        return "来电未说话就结束"
    if state.pending is not None:
        return "客户未回答追问就挂断"
    return "未能理解客户诉求"
