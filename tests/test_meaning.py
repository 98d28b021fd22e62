"""dialog/meaning.py: sentence embeddings from the real multilingual-e5-small model, and the committed intent head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dialog import meaning
from dialog.meaning import MeaningHead, committed_or_fit, embed
from dialog.normalize import normalize
from dialog.train import intent_head, intent_head_key, load_examples


def test_turns_that_mean_the_same_are_closer_than_turns_that_do_not() -> None:
    parcel, late, invoice, refund = embed(["我的快递到哪了", "包裹好几天了还没到", "我要开发票", "钱什么时候退给我"])
    assert parcel.shape == (meaning.DIM,) and abs(float(np.linalg.norm(parcel)) - 1.0) < 1e-3
    assert parcel @ late > parcel @ invoice and parcel @ late > parcel @ refund
    assert embed([]).shape == (0, meaning.DIM)


def test_the_committed_intent_head_was_trained_from_the_current_data() -> None:
    committed = MeaningHead.load(meaning.HEADS_DIR / "intents.npz")
    assert committed.key == intent_head_key(), "intents.tsv or the normalisation changed: run python -m dialog.meaning"


def test_the_intent_head_reads_our_held_out_lines() -> None:
    head = intent_head()
    test = load_examples("test")
    rows = head.probabilities(embed([normalize(e.text) for e in test]))
    right = sum(head.labels[int(row.argmax())] == e.intent for row, e in zip(rows, test, strict=True))
    assert right / len(test) >= 0.8, f"{right}/{len(test)}"


def test_a_stale_head_is_retrained_and_cached_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meaning, "HEADS_DIR", tmp_path / "committed")
    stale = MeaningHead(["a", "b"], np.zeros((2, meaning.DIM)), np.zeros(2), key="old")
    stale.save(tmp_path / "committed" / "intents.npz")
    built: list[str] = []

    def build(key: str) -> MeaningHead:
        built.append(key)
        return MeaningHead(["a", "b"], np.ones((2, meaning.DIM)), np.array([0.0, 1.0]), key=key)

    head = committed_or_fit("intents", "new", build, tmp_path / "cache")
    assert built == ["new"] and head.key == "new"
    again = committed_or_fit("intents", "new", build, tmp_path / "cache")
    assert built == ["new"] and again.key == "new", "the retrained head is cached"
    current = committed_or_fit("intents", "old", build, tmp_path / "cache")
    assert current.key == "old", "a current committed head is used"
