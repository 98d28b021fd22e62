"""A linear text classifier over TF-IDF features, fitted with scikit-learn and kept on disk as plain arrays.

Features: character unigrams and bigrams, and fuzzy tone-less pinyin syllables and syllable bigrams
(so leftover homophone slips still match). Prediction applies the vocabularies, idf weights and
coefficients directly (the same numbers as ``Pipeline.predict_proba``, without its per-call
overhead), so loading a cached model needs numpy and pypinyin, not scikit-learn.

The cache is one ``.npz`` per model under the user's cache directory (``dialog/cache.py``), named by a
hash of everything that shapes the model (training data, the code that reads it, library versions).
It is read without pickle; a file that cannot be read is retrained over.
"""

from __future__ import annotations

import logging
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import numpy as np
from pypinyin import Style, lazy_pinyin

from dialog.cache import cache_dir, write_atomically
from dialog.normalize import fuzzy_syllable, is_han

log = logging.getLogger(__name__)
Analyzer = Callable[[str], list[str]]


def char_ngrams(text: str) -> list[str]:
    """Characters and character bigrams."""
    return list(text) + [text[i : i + 2] for i in range(len(text) - 1)]


@cache
def _char_syllable(ch: str) -> str:
    return fuzzy_syllable(lazy_pinyin(ch, style=Style.NORMAL)[0]) if is_han(ch) else ch


def pinyin_tokens(text: str) -> list[str]:
    """Fuzzy tone-less syllables and syllable bigrams."""
    syllables = [_char_syllable(ch) for ch in text]
    return syllables + [f"{a}_{b}" for a, b in zip(syllables, syllables[1:], strict=False)]


ANALYZERS: dict[str, Analyzer] = {"chars": char_ngrams, "pinyin": pinyin_tokens}


class TextClassifier:
    """Probabilities over the trained labels for normalised texts."""

    def __init__(
        self,
        labels: Sequence[str],
        parts: Sequence[tuple[str, Sequence[str], np.ndarray]],
        weights: np.ndarray,
        bias: np.ndarray,
    ) -> None:
        """``parts``: per analyzer name, its terms in column order and their idf weights."""
        self.labels: tuple[str, ...] = tuple(labels)
        self._parts: list[tuple[str, Analyzer, dict[str, int], np.ndarray, int]] = []
        offset = 0
        for name, terms, idf in parts:
            self._parts.append((name, ANALYZERS[name], {t: i for i, t in enumerate(terms)}, np.asarray(idf), offset))
            offset += len(terms)
        if weights.shape != (offset, len(self.labels)) or bias.shape != (len(self.labels),):
            raise ValueError(f"expected weights {(offset, len(self.labels))}, got {weights.shape}")
        self._weights = np.ascontiguousarray(weights, dtype=float)
        self._bias = np.asarray(bias, dtype=float)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, one column per label in ``self.labels``."""
        scores = np.tile(self._bias, (len(texts), 1))
        for row, text in enumerate(texts):
            for _, analyze, vocabulary, idf, offset in self._parts:
                counts = Counter(t for t in analyze(text) if t in vocabulary)
                if not counts:
                    continue
                columns = np.fromiter((vocabulary[t] for t in counts), dtype=np.int64, count=len(counts))
                values = (1.0 + np.log(np.fromiter(counts.values(), dtype=float, count=len(counts)))) * idf[columns]
                values /= np.linalg.norm(values)
                scores[row] += values @ self._weights[columns + offset]
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return np.asarray(scores / scores.sum(axis=1, keepdims=True))

    def ranked(self, text: str) -> list[tuple[str, float]]:
        """Labels with their probability, most likely first (ties by label name)."""
        row = self.probabilities([text])[0]
        return sorted(zip(self.labels, (float(p) for p in row), strict=True), key=lambda lp: (-lp[1], lp[0]))

    def save(self, path: Path) -> None:
        """Write the model atomically (a temporary file renamed over ``path``)."""
        arrays: dict[str, np.ndarray] = {
            "labels": np.array(self.labels),
            "weights": self._weights,
            "bias": self._bias,
            "parts": np.array([p[0] for p in self._parts]),
        }
        for name, _, vocabulary, idf, _ in self._parts:
            arrays[f"{name}_terms"] = np.array(sorted(vocabulary, key=vocabulary.__getitem__))
            arrays[f"{name}_idf"] = idf
        write_atomically(path, lambda stream: np.savez(stream, allow_pickle=False, **arrays))

    @classmethod
    def load(cls, path: Path) -> TextClassifier:
        with np.load(path, allow_pickle=False) as data:
            parts = [(str(n), [str(t) for t in data[f"{n}_terms"]], data[f"{n}_idf"]) for n in data["parts"]]
            return cls([str(x) for x in data["labels"]], parts, data["weights"], data["bias"])


def fit(
    texts: Sequence[str], labels: Sequence[str], c: float, tol: float, balanced: bool = False, solver: str = "saga"
) -> TextClassifier:
    """Fit TF-IDF (chars + pinyin) and logistic regression; deterministic (fixed solver seed).

    ``balanced`` weighs each label inversely to its frequency (few angry examples among many plain ones);
    ``solver``: saga is fastest on the large intent set, lbfgs converges where saga crawls (weighted labels).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion

    union = FeatureUnion(
        [(name, TfidfVectorizer(analyzer=analyze, sublinear_tf=True)) for name, analyze in ANALYZERS.items()]
    )
    weights = "balanced" if balanced else None
    model = LogisticRegression(C=c, solver=solver, tol=tol, max_iter=3000, random_state=0, class_weight=weights)
    model.fit(union.fit_transform(texts), list(labels))
    parts = []
    for name, vectorizer in union.transformer_list:
        vocabulary = vectorizer.vocabulary_
        parts.append((name, sorted(vocabulary, key=vocabulary.__getitem__), np.asarray(vectorizer.idf_)))
    return TextClassifier([str(c) for c in model.classes_], parts, np.asarray(model.coef_).T, model.intercept_)


def load_or_fit(name: str, key: str, build: Callable[[], TextClassifier], directory: Path | None) -> TextClassifier:
    """The cached model ``name`` for ``key``, else ``build()`` it and cache it (a failed write is only logged)."""
    path = (directory or cache_dir()) / f"{name}-{key}.npz"
    if path.exists():
        try:
            return TextClassifier.load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            log.warning("retraining %s: cached model unreadable (%s)", name, type(error).__name__)
    model = build()
    try:
        model.save(path)
    except OSError as error:
        log.warning("could not cache %s model: %s", name, type(error).__name__)
    return model
