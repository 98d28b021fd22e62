"""voice.live_line: what a server pays once at start-up so that no caller pays it in a turn."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.settings import Settings
from shop import kb
from voice.hotline import open_hotline
from voice.live_line import LiveLine


def test_the_policy_index_is_built_at_start_up_not_in_a_callers_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []
    original = kb.KnowledgeBase.__init__

    def counting(self: kb.KnowledgeBase, *args: object, **kwargs: object) -> None:
        built.append(1)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(kb.KnowledgeBase, "__init__", counting)
    hotline = open_hotline(Settings(db_path=tmp_path / "shop.sqlite3", model_dir=tmp_path / "models"))
    line = LiveLine(hotline)
    try:
        asyncio.run(line.ready())
        assert len(built) == 1, "LiveLine.ready() builds the shop's policy index"
        session = hotline.session(None)
        session.greet()
        result = session.hear_text("退货要什么条件")
        assert result.reply, "a policy answer"
        assert len(built) == 1, "the caller's policy question used the index built at start-up"
    finally:
        asyncio.run(line.shutdown())
