"""``ivr understand``: JSON Lines round trip over stdin, one argument, and the human-readable form."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from paths import REFERENCE_SHOP, shared

from voice.cli import main


@pytest.fixture(autouse=True)
def reference_shop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IVR_SHOP_FILE", str(shared(REFERENCE_SHOP)))
    monkeypatch.setenv("IVR_DB_PATH", str(tmp_path / "shop.sqlite3"))


def test_stdin_json_lines_round_trip(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["快第到哪了", "", "我昨天买的羽绒服能不能改成黑色的我急着穿", "再不给我解决我就打12315投诉你们"]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["understand", "--stdin", "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(lines)
    results = [json.loads(line) for line in out]
    assert [r["text"] for r in results] == lines
    assert "快递" in out[0]  # ensure_ascii=False: Chinese stays readable
    track, empty, modify, threat = results
    assert track["normalized"] == "快递到哪了"
    assert track["intents"][0]["name"] == "logistics.track"
    assert set(track["intents"][0]) == {"name", "confidence", "slots"}
    assert set(track["emotion"]) == {"label", "score", "cues"}
    assert empty["intents"] == [{"name": "other", "confidence": 0.0, "slots": {}}]
    slots = modify["intents"][0]["slots"]
    assert modify["intents"][0]["name"] == "order.modify"
    # the reference shop's clock (as_of 2026-11-20) is "now", and its products are the vocabulary
    wanted = {"date": "2026-11-19", "product": "P1003", "color": "黑色", "urgency": "high"}
    assert {k: slots.get(k) for k in wanted} == wanted
    assert threat["emotion"]["label"] == "angry" and "threat:12315" in threat["emotion"]["cues"]


def test_one_text_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["understand", "订单号DD二零二六一一一九零零幺什么时候发货", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["intents"][0] == {
        "name": "logistics.ship_time",
        "confidence": result["intents"][0]["confidence"],
        "slots": {"order_id": "DD20261119001"},
    }


def test_human_output_has_a_line_per_intent(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["understand", "我的快递到哪了还有发票怎么开"]) == 0
    out = capsys.readouterr().out
    assert "logistics.track" in out and "invoice" in out and "emotion neutral" in out


def test_text_and_stdin_together_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["understand", "你好", "--stdin"]) == 2
    assert "either a TEXT argument or --stdin" in capsys.readouterr().err
