"""The rule that keeps the real-turn measurement honest: no line of the product's training data is a
copy or a near-copy of a real customer turn in ``../shared/data/real_turns_dev.tsv``.

Near-copy: after dropping punctuation, spaces, placeholders and fillers, a training line of at least
``MIN_CHARS`` characters that shares ``MAX_OVERLAP`` or more of its character bigrams with a real turn
(Jaccard), or where one contains the other and the shorter is most (``MAX_COVER``) of the longer.
Short lines (谢谢, 在吗, 好的) are everyone's words and are not compared, and neither is a common
question found inside a longer turn (「保修期是多长时间」 in 「你好请问保修期是多长时间」 is not a copy).
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

from paths import REAL_TURNS, shared

DATA = Path(__file__).resolve().parents[1] / "dialog" / "data"
TRAINING = ("intents.tsv", "emotion_train.tsv", "emotion_test.tsv", "dialect.tsv", "lexicon.tsv")
MIN_CHARS = 6
MAX_OVERLAP = 0.7
MAX_COVER = 0.8
_NOISE = re.compile(r"\[[^\]]*\]|[\s\W_]|[啊呀吧呢嘛哦哈嗯吗么了的]", re.UNICODE)


def _core(text: str) -> str:
    return _NOISE.sub("", text)


def _bigrams(text: str) -> frozenset[str]:
    return frozenset(text[i : i + 2] for i in range(len(text) - 1))


def _training_lines() -> list[tuple[str, str]]:
    lines = []
    for name in TRAINING:
        for number, line in enumerate((DATA / name).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip() and not line.startswith("#"):
                lines.append((f"{name}:{number}", line.split("\t")[0]))
    return lines


def _real_turns() -> list[str]:
    with shared(REAL_TURNS).open(encoding="utf-8", newline="") as f:
        return [row["text"] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def test_no_training_line_is_a_near_copy_of_a_real_customer_turn() -> None:
    real = [(core, _bigrams(core)) for core in map(_core, _real_turns()) if len(core) >= MIN_CHARS]
    by_bigram: dict[str, list[int]] = defaultdict(list)
    for index, (_, grams) in enumerate(real):
        for gram in grams:
            by_bigram[gram].append(index)
    copies = []
    for where, text in _training_lines():
        core = _core(text)
        if len(core) < MIN_CHARS:
            continue
        grams = _bigrams(core)
        shared_counts: dict[int, int] = defaultdict(int)
        for gram in grams:
            for index in by_bigram.get(gram, ()):
                shared_counts[index] += 1
        for index, common in shared_counts.items():
            other, other_grams = real[index]
            jaccard = common / len(grams | other_grams)
            inside = (core in other or other in core) and min(len(core), len(other)) >= MAX_COVER * max(
                len(core), len(other)
            )
            if jaccard >= MAX_OVERLAP or inside:
                copies.append(f"{where} ({jaccard:.2f})")
    assert not copies, f"training lines too close to real customer turns: {copies}"
