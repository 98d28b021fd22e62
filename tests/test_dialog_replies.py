"""Reply templates: the shipped file is valid, and a bad edit fails loudly naming the template."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from core.errors import ConfigError
from dialog import replies
from dialog.replies import FIELDS, date_text, duration_text, join_list, load, render, validate


def shipped() -> dict[str, str]:
    return json.loads(replies.TEMPLATES_PATH.read_text(encoding="utf-8"))


def test_shipped_templates_cover_every_key_the_code_renders() -> None:
    texts = replies.templates()
    assert set(texts) == set(FIELDS)
    for key in FIELDS:  # each renders with exactly its declared fields
        assert render(key, **{f: "X" for f in FIELDS[key]})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"greet.known": "{nam}您好"}, "'greet.known' uses unknown field {nam}"),
        ({"promo.owed": "减{amount:.2f}"}, "'promo.owed' may only use plain"),
        ({"promo.owed": "减{amount"}, "'promo.owed' is not a valid template"),
        ({"greetz": "您好"}, "unknown template 'greetz'"),
        ({"greeting": ""}, "'greeting' must be a non-empty string"),
    ],
)
def test_a_bad_edit_names_the_template_and_field(edit: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("(", r"\(")):
        validate({**shipped(), **edit})


def test_a_missing_template_and_a_broken_file_are_reported(tmp_path: Path) -> None:
    texts = shipped()
    del texts["goodbye"]
    with pytest.raises(ConfigError, match="'goodbye' is missing"):
        validate(texts)
    broken = tmp_path / "replies.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read"):
        load(broken)


def test_admin_wording_is_used_and_comments_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "replies.json"
    path.write_text(json.dumps({**shipped(), "_note": "x", "greeting": "喂，您好！"}, ensure_ascii=False), "utf-8")
    assert load(path)["greeting"] == "喂，您好！"


def test_render_refuses_fields_the_template_does_not_declare() -> None:
    with pytest.raises(ValueError, match="promo.owed"):
        render("promo.owed", order="这单", titles="满减")  # amount missing


def test_spoken_forms() -> None:
    today = date(2026, 11, 20)
    spoken = [date_text(date(2026, 11, d), today) for d in (19, 20, 21, 22, 26)]
    assert spoken == ["昨天", "今天", "明天", "后天", "26号"]
    assert date_text(date(2026, 12, 5), today) == "12月5号"
    assert duration_text(75.8) == "3天多"  # 3 × 24 = 72 h, 3.8 h more
    assert duration_text(48.0) == "2天"
    assert duration_text(5.5) == "5个多小时"
    assert join_list(["白色M码", "黑色M码", "黑色XL码"]) == "白色M码、黑色M码和黑色XL码"
