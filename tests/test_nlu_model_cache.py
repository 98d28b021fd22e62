"""The trained models: cached on disk by a hash of their inputs, and the same labels whatever PYTHONHASHSEED."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from dialog.cache import fingerprint
from dialog.textmodel import TextClassifier, fit, load_or_fit
from dialog.train import load_examples

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["快递到哪了", "物流怎么不动了", "我要退货", "退货怎么退", "发票怎么开", "能开专票吗"]
LABELS = ["track", "track", "return", "return", "invoice", "invoice"]


def small_model() -> TextClassifier:
    return fit(TEXTS, LABELS, c=10.0, tol=1e-3)


def test_a_cached_model_is_loaded_not_retrained(tmp_path: Path) -> None:
    built: list[TextClassifier] = []

    def build() -> TextClassifier:
        built.append(small_model())
        return built[-1]

    first = load_or_fit("demo", "k1", build, tmp_path)
    again = load_or_fit("demo", "k1", build, tmp_path)
    assert len(built) == 1 and (tmp_path / "demo-k1.npz").exists()
    assert again.labels == first.labels
    assert np.allclose(again.probabilities(TEXTS), first.probabilities(TEXTS))
    load_or_fit("demo", "k2", build, tmp_path)  # other inputs, other key: trained again
    assert len(built) == 2


def test_a_corrupt_cache_file_is_retrained_over(tmp_path: Path) -> None:
    path = tmp_path / "demo-k1.npz"
    path.write_bytes(b"not a model")
    model = load_or_fit("demo", "k1", small_model, tmp_path)
    assert model.ranked("快递到哪了")[0][0] == "track"
    assert TextClassifier.load(path).labels == model.labels  # rewritten, readable
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left nothing behind


def test_the_key_follows_the_content() -> None:
    assert fingerprint("a", b"data") == fingerprint("a", b"data")
    assert fingerprint("a", b"data") != fingerprint("a", b"dat@")
    assert fingerprint("ab", b"c") != fingerprint("a", b"bc")


def _understand_all(lines: list[str], seed: str, cache: Path, tmp_path: Path) -> list[dict[str, object]]:
    env = {
        **os.environ,
        "PYTHONHASHSEED": seed,
        "XDG_CACHE_HOME": str(cache),
        "PYTHONPATH": str(ROOT),
        "IVR_DB_PATH": str(tmp_path / f"shop-{seed}.sqlite3"),
    }
    env.pop("IVR_SHOP_FILE", None)
    command = [sys.executable, "-m", "voice.cli", "understand", "--stdin", "--json"]
    done = subprocess.run(
        command, input="\n".join(lines), capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=True
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_same_intents_and_emotion_whatever_the_hash_seed(tmp_path: Path) -> None:
    lines = [e.text for e in load_examples()][::5][:300]
    first = _understand_all(lines, "1", tmp_path / "cache-a", tmp_path)  # trains and caches
    second = _understand_all(lines, "2", tmp_path / "cache-b", tmp_path)  # trains again, other hash seed
    third = _understand_all(lines, "3", tmp_path / "cache-a", tmp_path)  # loads the cached model
    assert len(first) == len(lines) >= 250
    assert first == second == third
    assert list((tmp_path / "cache-a" / "ivr" / "nlu").glob("intents-*.npz"))
