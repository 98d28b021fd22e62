"""speak.compose: a reply fitted to the phone, whatever the answers put together say."""

from __future__ import annotations

from dialog.replies import render
from dialog.speak import FIRST_MAX, REPLY_MAX, compose, sentences


def test_a_sentence_said_twice_is_said_once() -> None:
    spoken = compose("包裹在路上。预计明天到。包裹在路上。", "还有什么可以帮您？")
    assert spoken.text == "包裹在路上。预计明天到。还有什么可以帮您？" and spoken.held_back == ""


def test_a_long_first_sentence_is_cut_at_a_comma() -> None:
    head, tail = "这单" + "的" * 30, "包裹已经到了本市的转运中心，预计明天送达"
    text = compose(f"{head}，{tail}。", "").text
    assert text == f"{head}。{tail}。" and len(sentences(text)[0]) <= FIRST_MAX


def test_what_does_not_fit_is_held_back_whole_sentences_only() -> None:
    body = "".join(f"第{i}句话说的是一件需要讲清楚的事情。" for i in range(1, 8))
    spoken = compose(body, "要我接着说吗？")
    assert len(spoken.text) <= REPLY_MAX and spoken.text.endswith("要我接着说吗？")
    assert spoken.held_back.startswith("第") and set(sentences(spoken.held_back)).isdisjoint(sentences(spoken.text))
    assert sentences(body) == sentences(spoken.text)[:-1] + sentences(spoken.held_back)


def test_a_reply_already_said_is_shortened_not_repeated() -> None:
    first = compose("现在有满减活动。另外还有新人券。", "")
    again = compose("现在有满减活动。另外还有新人券。", "", (first.text,))
    assert again.text != first.text and again.text == render("repeat", first="现在有满减活动。")
