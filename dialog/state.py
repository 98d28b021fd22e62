"""Per-call dialog state and the inputs the dialog needs besides the caller's words.

Everything here is frozen: ``manager.handle`` returns a new ``CallState`` each turn, so a test can
keep any intermediate state and replay from it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.shop import ChangeRecord, Customer, ShopInfo, ShopPort
from core.types import Emotion, Intent, Skill, TranscriptLine, TransferRequest, Understanding


@dataclass(frozen=True, slots=True)
class Context:
    """What one turn may use besides state and words: the shop, its "now", the call's clock."""

    shop: ShopPort
    now: datetime  # timezone-aware; the shop clock (a snapshot's as_of, or the system clock)
    info: ShopInfo
    elapsed: float = 0.0  # seconds since the call started, stamped on transcript lines

    @classmethod
    def create(cls, shop: ShopPort, now: datetime, elapsed: float = 0.0) -> Context:
        return cls(shop, now, shop.info(), elapsed)

    @property
    def tz(self) -> tzinfo:
        try:
            return ZoneInfo(self.info.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return self.now.tzinfo or ZoneInfo("UTC")

    @property
    def local_now(self) -> datetime:
        return self.now.astimezone(self.tz)

    @property
    def today(self) -> date:
        return self.local_now.date()


# --- what the bot is waiting for ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfirmChange:
    """Asked 「确认把…改成…吗？」; an affirm makes the change, a deny keeps the order as it is."""

    order_id: str
    changes: tuple[tuple[str, str], ...]  # (field, new value) as said; field is address | color | size
    product_id: str | None = None  # the item whose colour or size changes
    sku: str | None = None  # its new SKU: colour and size change in one step


@dataclass(frozen=True, slots=True)
class ChooseOrder:
    """Asked which order the caller means; ``intents`` are answered once it is known."""

    intents: tuple[Intent, ...]
    candidates: tuple[str, ...]  # order ids, newest first


@dataclass(frozen=True, slots=True)
class NeedOrderId:
    """Asked for an order number (unknown caller, no orders, or a number that does not exist)."""

    intents: tuple[Intent, ...]


@dataclass(frozen=True, slots=True)
class OfferTransfer:
    """Offered a human (e.g. a stalled parcel → logistics); an affirm transfers."""

    skill: Skill
    reason: str


@dataclass(frozen=True, slots=True)
class OfferCallback:
    """Queued for an agent with a long expected wait: asked whether we should call back instead; an
    affirm books the callback and leaves the queue, anything else keeps the caller's place."""


@dataclass(frozen=True, slots=True)
class Verify:
    """Asked the last four digits of the order's phone number or the recipient's name before telling
    anything about ``order_id`` or changing it; ``intents`` are answered once verified."""

    order_id: str
    intents: tuple[Intent, ...]


@dataclass(frozen=True, slots=True)
class CollectAddress:
    """Asked for the new delivery address of ``order_id``; the next words are taken down and read back."""

    order_id: str


@dataclass(frozen=True, slots=True)
class CollectVariant:
    """Asked which colour or size (``field``) an item of ``order_id`` should become."""

    order_id: str
    field: str  # color | size


@dataclass(frozen=True, slots=True)
class OfferDetails:
    """Offered the details of a policy (「要我把退款规则也说一下吗？」); an affirm reads ``text``."""

    text: str
    kb_ids: tuple[str, ...] = ()
    question: str = ""  # how it was offered, to ask again the same way


@dataclass(frozen=True, slots=True)
class Applying:
    """A confirmed change handed to the session as a ``ChangeOrder``; ``manager.changed`` closes it
    and then answers the rest of the turn (``rest`` of ``u``)."""

    change: ConfirmChange
    rest: tuple[Intent, ...]
    u: Understanding


Pending = (
    ConfirmChange
    | ChooseOrder
    | NeedOrderId
    | OfferTransfer
    | OfferCallback
    | Verify
    | CollectAddress
    | CollectVariant
    | OfferDetails
    | Applying
)


@dataclass(frozen=True, slots=True)
class Part:
    """The answer to one intent: a sentence or two, and what it touched, promised or offers next."""

    text: str
    order_id: str | None = None
    offer: Pending | None = None  # a question to end the reply with
    kb_ids: tuple[str, ...] = ()
    note: str = ""  # what was done or promised, for the contact record and the handoff
    skill: Skill | None = None  # the desk that knows this topic, for a transfer


@dataclass(frozen=True, slots=True)
class Turn:
    text: str
    intents: tuple[Intent, ...]
    emotion: Emotion


@dataclass(frozen=True, slots=True)
class CallState:
    customer: Customer | None = None
    orders: tuple[str, ...] = ()  # orders touched, in the order they came up
    turns: tuple[Turn, ...] = ()
    failed: int = 0  # failed understandings in a row
    pending: Pending | None = None
    transcript: tuple[TranscriptLine, ...] = ()
    kb_ids: tuple[str, ...] = ()  # knowledge-base policies used in answers
    notes: tuple[str, ...] = ()  # what the bot did or promised (登记补差32.8元, 改地址…)
    topics: tuple[Skill, ...] = ()  # desks of the topics raised, in order
    changes: tuple[ChangeRecord, ...] = ()
    verified: tuple[tuple[str, str], ...] = ()  # (customer id, how) the caller proved to be this call
    verify_failures: int = 0  # wrong answers to the verification question
    product: str | None = None  # the product last talked about, for 「卡其色M码呢」
    transfer: TransferRequest | None = None  # set when the call was handed to a human
    callback: TransferRequest | None = None  # set when a callback was booked (off duty, nobody free, chosen)
    promised: str = ""  # when the booked callback was promised for, as said (「稍后」「明天09:00以后」)
    missed: TransferRequest | None = None  # wanted a human, none free, and no number to call back
    caller: str | None = None  # the caller ID the call came with (None: withheld or not trusted)
    ended: bool = False  # hung up, transferred or a callback booked: no more turns

    @property
    def emotions(self) -> tuple[Emotion, ...]:
        return tuple(t.emotion for t in self.turns)

    @property
    def intents(self) -> tuple[Intent, ...]:
        return tuple(i for t in self.turns for i in t.intents)

    def say(self, speaker: str, text: str, at: float) -> CallState:
        if not text:
            return self
        return replace(self, transcript=(*self.transcript, TranscriptLine(speaker, text, at)))

    def touch(self, order_id: str | None) -> CallState:
        if order_id is None or order_id in self.orders:
            return self
        return replace(self, orders=(*self.orders, order_id))

    def absorb(self, part: Part) -> CallState:
        """Record what an answer touched, used and promised."""
        state = self.touch(part.order_id)
        kb = tuple(k for k in part.kb_ids if k not in state.kb_ids)
        notes = (part.note,) if part.note and part.note not in state.notes else ()
        topics = (part.skill,) if part.skill and part.skill not in state.topics else ()
        return replace(state, kb_ids=state.kb_ids + kb, notes=state.notes + notes, topics=state.topics + topics)
