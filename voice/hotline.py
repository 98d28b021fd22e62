"""Assemble the hotline from settings: the shop, its clock, the understander and the speech engine.

Every entry point (``ivr serve``, ``ivr call``, ``ivr understand``) builds its parts here, so a
call on the command line runs through exactly what a live call runs through.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from core.clock import Clock, ShiftedClock, SystemClock
from core.settings import Settings
from core.shop import ShopInfo, ShopPort
from dialog.nlu import Understander
from dialog.vocabulary import Vocabulary
from routing.callbacks import Callbacks
from shop import open_shop
from shop.fulfilment import promise_gaps

if TYPE_CHECKING:
    from asr.engine import AsrEngine
    from voice.session import CallSession, TurnSpeech
    from voice.transfers import TransferPort


# what every shop's callers say, put before the shop's own words (products, then carriers) in a whisper prompt
SHOP_WORDS = ("满减", "优惠券", "直播价", "补差价", "退款", "退货", "换货", "发票", "快递", "订单号")


RESTART_STEP = timedelta(seconds=1)  # a restarted snapshot clock starts this far after the last record


def shop_clock(info: ShopInfo, last_recorded: datetime | None = None) -> Clock:
    """A snapshot shop's clock starts at its ``as_of``, or just after the last thing the hotline
    recorded there if that is later (so a restart never dates new records before older ones);
    a live shop uses the system clock."""
    if info.as_of is not None:
        start = info.as_of if last_recorded is None else max(info.as_of, last_recorded + RESTART_STEP)
        return ShiftedClock(start)
    return SystemClock(ZoneInfo(info.timezone))


@dataclass
class Hotline:
    settings: Settings
    shop: ShopPort
    understander: Understander
    clock: Clock
    vocabulary: Vocabulary = field(default_factory=Vocabulary.empty)
    warnings: tuple[str, ...] = ()  # promises the hotline will not make: the shop does not state them
    carriers: tuple[str, ...] = ()  # the carriers the shop names, for the speech engine's prompt
    transfers: TransferPort | None = None  # the agents' queue (set by the server or --agents-online); None: callbacks
    callbacks: Callbacks | None = None  # the callbacks promised, for the agents' desk (open_hotline: the hotline db)
    _engine: AsrEngine | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def engine(self) -> AsrEngine:
        """The speech engine, loaded on first use (models are large) and shared by every call."""
        with self._lock:
            if self._engine is None:
                from asr.engine import create_engine

                shop_words = (*SHOP_WORDS, *self.vocabulary.lexicon(), *self.carriers)
                words = shop_words if self.settings.whisper_prompt else ()
                self._engine = create_engine(self.settings, vocabulary=words)
            return self._engine

    def warm_up(self) -> None:
        """Pay the brain's first-use costs now (a server starting), not in a caller's turn: the shop's
        policy index is built by the first policy question (jieba's dictionary alone: 0.5 s)."""
        self.shop.search_policies("退货")

    def claimed_caller(self, number: str | None) -> str | None:
        """A number a client says is the caller's (``POST /api/calls``, the softphone's field): caller ID
        only when the operator trusts its clients (``IVR_TRUST_CLAIMED_CALLER``). A web page or an API
        client cannot prove whose phone it is, so by default the call is anonymous and orders need
        verification; Twilio's and SIP's caller ID are the carrier's and used as they come."""
        return number if self.settings.trust_claimed_caller else None

    def session(
        self,
        caller: str | None,
        call_id: str | None = None,
        *,
        with_speech: bool = False,
        channel: str = "cli",
        audio_url: str | None = None,
    ) -> CallSession:
        """A call's session; ``channel`` and ``audio_url`` go into its handoff packet."""
        from voice.session import CallSession

        speech = self.speech_for_call() if with_speech else None
        return CallSession(
            self.shop, self.understander, self.clock, speech, caller=caller, call_id=call_id,
            transfers=self.transfers, channel=channel, audio_url=audio_url,
            callback_offer_s=float(self.settings.callback_offer_seconds), callbacks=self.callbacks,
        )  # fmt: skip

    def speech_for_call(self) -> TurnSpeech:
        """A speech path for one call (VAD, its own recogniser stream, the caller's prosody baseline)."""
        from voice.session import TurnSpeech

        return TurnSpeech(self.engine(), vad_aggressiveness=self.settings.vad_aggressiveness)


def open_hotline(settings: Settings, shop_file: Path | None = None) -> Hotline:
    """Open the configured shop (or ``shop_file``) in its own database and build the parts."""
    if shop_file is not None:
        settings = dataclasses.replace(settings, shop_file=shop_file)
    shop = open_shop(settings)
    info = shop.info()
    vocabulary = Vocabulary.from_products(shop.products(), info.order_numbers)
    clock = shop_clock(info, shop.last_recorded_at())
    gaps = promise_gaps(info.fulfilment)
    understander = Understander(vocabulary)
    return Hotline(
        settings, shop, understander, clock, vocabulary, warnings=gaps, carriers=shop.carriers(),
        callbacks=Callbacks(settings.db_path),
    )  # fmt: skip
