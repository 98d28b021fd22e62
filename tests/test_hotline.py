"""The hotline assembled from settings: the shop, its clock and the speech engine's prompt."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import testmodels
from paths import REFERENCE_SHOP, shared

from core.settings import Settings
from voice.hotline import SHOP_WORDS, open_hotline


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    model = testmodels.require(testmodels.whisper_base_dir(), testmodels.INSTALL_HINT)
    return Settings(asr_engine="whisper", whisper_model=str(model), db_path=tmp_path / "shop.sqlite3")


def test_the_snapshot_clock_starts_at_its_as_of(settings: Settings) -> None:
    hotline = open_hotline(settings, shared(REFERENCE_SHOP))
    assert hotline.clock.now().isoformat().startswith("2026-11-20T10:0")
    assert hotline.shop.info().name == "棉语生活旗舰店"


@pytest.mark.models
def test_whisper_gets_no_prompt_unless_asked(settings: Settings) -> None:
    assert open_hotline(settings, shared(REFERENCE_SHOP)).engine().prompt() is None  # type: ignore[attr-defined]


@pytest.mark.models
def test_whisper_prompt_carries_the_shop_words_when_asked(settings: Settings) -> None:
    hotline = open_hotline(replace(settings, whisper_prompt=True), shared(REFERENCE_SHOP))
    prompt = hotline.engine().prompt()  # type: ignore[attr-defined]
    assert prompt is not None and "满减" in prompt
    assert "羽绒服" in prompt  # a product alias from the reference shop, not from our code
    said = prompt.split("：", 1)[1].rstrip("。").split("、")
    assert set(said) <= {*SHOP_WORDS, *hotline.vocabulary.lexicon(), *hotline.carriers}  # nothing of another shop
    assert Settings.from_env({"IVR_WHISPER_PROMPT": "true"}).whisper_prompt is True
