"""The intent classifier, trained from ``dialog/data/intents.tsv`` and cached on disk.

Rows with ``split=train`` are trained on; ``split=test`` is held out for ``bench/nlu.py``. The
trained model is kept under the user's cache directory keyed by a hash of the training data, the
normalisation tables and this code, so a start-up loads it instead of training again
(``dialog/textmodel.py``). ``python -m dialog.train`` trains once and prints held-out accuracy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path

from dialog.cache import fingerprint
from dialog.intents import INTENTS
from dialog.meaning import HEADS_DIR, MeaningHead, committed_or_fit, fit_head, head_key
from dialog.normalize import DATA_DIR, normalize
from dialog.textmodel import TextClassifier, fit, load_or_fit

PRODUCT_MASK = "#"
REGULARISATION_C = 10.0  # inverse L2 strength; larger gives sharper probabilities on short clauses
SOLVER_TOL = 1e-3  # same cross-validated accuracy as 1e-4 at a sixth of the training time
# What shapes a trained model besides its own examples: the normalisation tables and the code.
MODEL_INPUTS = ("dialect.tsv", "lexicon.tsv", "common_words.txt", "product_words.txt")
MODEL_CODE = (Path(__file__), Path(__file__).with_name("textmodel.py"), Path(__file__).with_name("normalize.py"))


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    intent: str
    split: str  # train | test
    source: str  # hand | variant | hand2


def load_examples(split: str | None = None, name: str = "intents.tsv") -> list[Example]:
    """Rows of a ``text<TAB>intent<TAB>split<TAB>source`` file, optionally one split only."""
    examples = []
    for number, line in enumerate((DATA_DIR / name).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if len(cells) < 3 or cells[1] not in INTENTS:
            raise ValueError(f"{name}:{number}: expected text<TAB>intent<TAB>split with a known intent, got {line!r}")
        example = Example(cells[0], cells[1], cells[2], cells[3] if len(cells) > 3 else "hand")
        if split is None or example.split == split:
            examples.append(example)
    return examples


@cache
def generic_product_words() -> tuple[str, ...]:
    """Category nouns any shop's callers use (衣服, 鞋子, 冰箱…), from ``dialog/data/product_words.txt``."""
    lines = (DATA_DIR / "product_words.txt").read_text(encoding="utf-8").splitlines()
    return tuple(w.strip() for w in lines if w.strip() and not w.startswith("#"))


class ProductMask:
    """Replaces product nouns (generic category words and the shop's terms) with ``PRODUCT_MASK``, longest first.

    Masked in training and at run time, so that "杯子" in a damage example does not make every
    question about a cup look like a damage report.
    """

    def __init__(self, extra_terms: Sequence[str] = ()) -> None:
        terms = sorted({*generic_product_words(), *(t for t in extra_terms if len(t) >= 2)}, key=lambda t: (-len(t), t))
        self._pattern = re.compile("|".join(re.escape(t) for t in terms))

    def __call__(self, text: str) -> str:
        return self._pattern.sub(PRODUCT_MASK, text)


def model_key(data_files: Sequence[str]) -> str:
    """A hash of everything that shapes a trained model: its data files, the tables and code, versions."""
    files = [DATA_DIR / name for name in (*data_files, *MODEL_INPUTS)] + list(MODEL_CODE)
    return fingerprint(version("scikit-learn"), version("pypinyin"), *(path.read_bytes() for path in files))


# How callers wrap a need: an opening and a closing with no need of their own. Every training example is
# also learnt once wrapped (a fixed rotation, so training stays deterministic), so the classifier learns
# to look past them in long turns.
_OPENINGS = (
    "你好",
    "请问一下",
    "我想问下",
    "麻烦问一下",
    "亲",
    "在吗",
    "那个",
    "我昨天买的",
    "我之前买了个#",
    "我在你们店买的#",
    "客服你好",
    "喂",
    "我这个订单",
    "就是",
)
_CLOSINGS = ("啊", "呢", "谢谢", "麻烦了", "好吗", "谢谢啦", "在线等", "呀", "哈", "拜托了", "急", "呗")
_SOCIAL = frozenset({"greeting", "goodbye", "affirm", "deny", "other"})


def _wrapped(examples: Sequence[Example]) -> list[tuple[str, str]]:
    rows = []
    for i, e in enumerate(examples):
        if e.intent in _SOCIAL:
            continue
        opening, closing = _OPENINGS[i % len(_OPENINGS)], _CLOSINGS[(i // len(_OPENINGS)) % len(_CLOSINGS)]
        rows.append((opening + normalize(e.text) + closing, e.intent))
    return rows


def train(examples: Sequence[Example]) -> TextClassifier:
    mask = ProductMask()
    rows = [(normalize(e.text), e.intent) for e in examples] + _wrapped(examples)
    return fit([mask(t) for t, _ in rows], [intent for _, intent in rows], REGULARISATION_C, SOLVER_TOL)


@cache
def default_classifier(cache_dir: Path | None = None) -> TextClassifier:
    """The classifier trained on the training split: from the disk cache, else trained and cached."""
    return load_or_fit("intents", model_key(["intents.tsv"]), lambda: train(load_examples("train")), cache_dir)


EMOTIONS = ("neutral", "anxious", "angry")
EMOTION_C = 4.0
# Plain questions from intents.tsv that train the emotion model as neutral: not the escalations, not
# rushing, and without words of hurry or blame.
_NOT_PLAIN_INTENTS = frozenset({"complaint", "human_agent", "logistics.expedite"})
# hand2 lines carry impatience and sarcasm their intent label does not mark, so they do not teach calm.
_PLAIN_SOURCES = frozenset({"hand", "variant"})
_STIRRED = re.compile(
    r"急|快点|赶紧|怎么还|到底|又|投诉|差评|骗|垃圾|破|气|烦|什么态度|好几天|一直|还是没|还不|几天了|凭什么|根本|必须"
)


def emotion_examples() -> list[tuple[str, str]]:
    """(text, label) rows: ``emotion_train.tsv`` plus plain questions from the intents' training split."""
    rows = []
    for number, line in enumerate((DATA_DIR / "emotion_train.tsv").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if len(cells) != 2 or cells[1] not in EMOTIONS:
            raise ValueError(f"emotion_train.tsv:{number}: expected text<TAB>{'|'.join(EMOTIONS)}, got {line!r}")
        rows.append((cells[0], cells[1]))
    plain = [
        e.text
        for e in load_examples("train")
        if e.source in _PLAIN_SOURCES and e.intent not in _NOT_PLAIN_INTENTS and not _STIRRED.search(e.text)
    ]
    return rows + [(text, "neutral") for text in plain] + _with_a_need(rows, plain)


def _with_a_need(rows: list[tuple[str, str]], plain: list[str]) -> list[tuple[str, str]]:
    """Upset turns also learnt beside a plain need (「快递到哪了」+「你们到底行不行」): the need does not calm them.

    As many pairs of plain needs are learnt as neutral, so that a long turn is not upset for being long.
    """
    upset = [(text, label) for text, label in rows if label != "neutral"]
    mixed = [
        (plain[(7 * i) % len(plain)] + text if i % 2 else text + plain[(7 * i) % len(plain)], label)
        for i, (text, label) in enumerate(upset)
    ]
    calm = [(plain[(11 * i) % len(plain)] + plain[(13 * i + 5) % len(plain)], "neutral") for i in range(len(upset))]
    return mixed + calm


def train_emotion() -> TextClassifier:
    rows = emotion_examples()
    return fit(
        [normalize(t) for t, _ in rows],
        [label for _, label in rows],
        EMOTION_C,
        SOLVER_TOL,
        balanced=True,
        solver="lbfgs",
    )


@cache
def emotion_classifier(cache_dir: Path | None = None) -> TextClassifier:
    """How a turn's words feel (neutral / anxious / angry): from the disk cache, else trained and cached."""
    return load_or_fit("emotion", model_key(["emotion_train.tsv", "intents.tsv"]), train_emotion, cache_dir)


INTENT_HEAD_C = 16.0  # the meaning head's inverse L2 strength (4 and 64 read real turns no better)


def intent_head_key() -> str:
    """What the intent meaning head is trained from: the intents' data, the normalisation, the code."""
    data = [(DATA_DIR / name).read_bytes() for name in ("intents.tsv", *MODEL_INPUTS)]
    here = Path(__file__)
    return head_key(data, [here.with_name("meaning.py"), here.with_name("normalize.py")])


def train_intent_head(key: str) -> MeaningHead:
    examples = load_examples("train")
    return fit_head([normalize(e.text) for e in examples], [e.intent for e in examples], INTENT_HEAD_C, key)


@cache
def intent_head(cache_dir: Path | None = None) -> MeaningHead:
    """Intent probabilities from a turn's meaning (``dialog/meaning.py``): the committed head, or trained."""
    return committed_or_fit("intents", intent_head_key(), train_intent_head, cache_dir)


EMOTION_HEAD_C = 4.0


def emotion_head_key() -> str:
    """What the emotion meaning head is trained from (``emotion_examples`` reads both files)."""
    data = [(DATA_DIR / name).read_bytes() for name in ("emotion_train.tsv", "intents.tsv", *MODEL_INPUTS)]
    here = Path(__file__)
    return head_key(data, [here.with_name("meaning.py"), here.with_name("normalize.py")])


def train_emotion_head(key: str) -> MeaningHead:
    rows = emotion_examples()
    return fit_head([normalize(t) for t, _ in rows], [label for _, label in rows], EMOTION_HEAD_C, key)


@cache
def emotion_head(cache_dir: Path | None = None) -> MeaningHead:
    """How a turn feels from its meaning (``dialog/meaning.py``): the committed head, or trained."""
    return committed_or_fit("emotion", emotion_head_key(), train_emotion_head, cache_dir)


def write_heads() -> None:
    """Retrain the committed meaning heads from the current data (``python -m dialog.meaning``)."""
    for name, key, build in (
        ("intents", intent_head_key(), train_intent_head),
        ("emotion", emotion_head_key(), train_emotion_head),
    ):
        if (HEADS_DIR / f"{name}.npz").exists() and MeaningHead.load(HEADS_DIR / f"{name}.npz").key == key:
            print(f"{name}: up to date ({key})")
            continue
        build(key).save(HEADS_DIR / f"{name}.npz")
        print(f"wrote {HEADS_DIR / f'{name}.npz'} ({key})")


def main() -> None:
    import time

    started = time.perf_counter()
    classifier = train(load_examples("train"))
    took = time.perf_counter() - started
    test = load_examples("test")
    mask = ProductMask()
    right = sum(classifier.ranked(mask(normalize(e.text)))[0][0] == e.intent for e in test)
    print(f"trained in {took:.2f}s; held-out accuracy {right}/{len(test)} = {right / len(test):.3f}")


if __name__ == "__main__":
    main()
