"""Assemble the hotline from settings: the shop, its clock, the understander and the speech engine.

Every entry point (``ivr serve``, ``ivr call``, ``ivr understand``) builds its parts here, so a
call on the command line runs through exactly what a live call runs through.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from core.clock import Clock, ShiftedClock, SystemClock
from core.settings import Settings
from core.shop import ShopInfo, ShopPort
from dialog.nlu import Understander
from dialog.vocabulary import Vocabulary
from shop import open_shop

if TYPE_CHECKING:
    from asr.engine import AsrEngine
    from voice.session import CallSession, TurnSpeech


# what every shop's callers say, put before the shop's own product words in a whisper prompt
SHOP_WORDS = ("满减", "优惠券", "直播价", "补差价", "退款", "退货", "换货", "发票", "顺丰", "中通", "韵达", "订单号")


def shop_clock(info: ShopInfo) -> Clock:
    """A snapshot shop's clock starts at its ``as_of``; a live shop uses the system clock."""
    if info.as_of is not None:
        return ShiftedClock(info.as_of)
    return SystemClock(ZoneInfo(info.timezone))


@dataclass
class Hotline:
    settings: Settings
    shop: ShopPort
    understander: Understander
    clock: Clock
    vocabulary: Vocabulary = field(default_factory=Vocabulary.empty)
    agent_load: MutableMapping[str, int] = field(default_factory=dict)  # agent id -> calls held
    _engine: AsrEngine | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def engine(self) -> AsrEngine:
        """The speech engine, loaded on first use (models are large) and shared by every call."""
        with self._lock:
            if self._engine is None:
                from asr.engine import create_engine

                words = (*SHOP_WORDS, *self.vocabulary.lexicon()) if self.settings.whisper_prompt else ()
                self._engine = create_engine(self.settings, vocabulary=words)
            return self._engine

    def session(self, caller: str | None, call_id: str | None = None, *, with_speech: bool = False) -> CallSession:
        from voice.session import CallSession

        speech = self.speech_for_call() if with_speech else None
        return CallSession(
            self.shop, self.understander, self.clock, speech, caller=caller, call_id=call_id, agent_load=self.agent_load
        )

    def speech_for_call(self) -> TurnSpeech:
        """A speech path for one call (VAD, its own recogniser stream, the caller's prosody baseline)."""
        from voice.session import TurnSpeech

        return TurnSpeech(self.engine(), vad_aggressiveness=self.settings.vad_aggressiveness)


def open_hotline(settings: Settings, shop_file: Path | None = None) -> Hotline:
    """Open the configured shop (or ``shop_file``, imported into a database of its own) and build the parts."""
    if shop_file is not None:
        key = hashlib.sha1(str(shop_file.resolve()).encode()).hexdigest()[:12]
        db = settings.db_path.with_name(f"shop-{key}.sqlite3")
        settings = dataclasses.replace(settings, shop_file=shop_file, db_path=db)
    shop = open_shop(settings)
    vocabulary = Vocabulary.from_products(shop.products())
    return Hotline(settings, shop, Understander(vocabulary), shop_clock(shop.info()), vocabulary)
