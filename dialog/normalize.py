"""From raw ASR text to standard Mandarin the classifier and slot filler can read.

Steps, in order: full-width to half-width, Traditional to Simplified (OpenCC tables), ASCII
upper-cased, punctuation/spaces/emoji removed, runs of spoken digits (二零二六幺幺…) to Arabic,
ASR homophone repair against a domain lexicon (快第→快递, 咋肥事→咋回事, 顺风快递→顺丰快递), then
dialect and colloquial words to standard ones (咋回事→怎么回事, 木有→没有, 中不中→行不行).

The homophone repair compares tone-less pinyin with fuzzy initials and finals (zh/z, ch/c, sh/s,
n/l, f/h including hui/fei, an/ang, en/eng, in/ing). It is careful not to "correct" real speech: a
span that is itself a common word, or whose edges form a common word with the neighbouring
characters, is left alone (顺风 only becomes 顺丰 next to 快递/物流/寄…), and a two-character
span must keep at least one character of the word it becomes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path

import opencc
from pypinyin import Style, lazy_pinyin, pinyin

from dialog.cache import cache_dir, fingerprint, write_atomically

DATA_DIR = Path(__file__).parent / "data"
COMMON_WORD_FREQ = 20  # jieba dictionary frequency from which a span counts as an ordinary word
CONTEXT_WINDOW = 4  # characters either side of a span searched for a lexicon entry's context words

_SPOKEN_DIGITS = {
    "零": "0",
    "〇": "0",
    "洞": "0",
    "幺": "1",
    "一": "1",
    "二": "2",
    "两": "2",
    "三": "3",
    "四": "4",
    "五": "5",
    "六": "6",
    "七": "7",
    "八": "8",
    "九": "9",
}
_DIGIT_RUN = re.compile(f"[{''.join(_SPOKEN_DIGITS)}]{{4,}}")
_FUZZY_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"))
_FUZZY_FINALS = (("ang", "an"), ("eng", "en"), ("ing", "in"))


# --- character-level clean-up ------------------------------------------------------------------


def to_halfwidth(text: str) -> str:
    """Full-width ASCII (ＤＤ１２３，) and the ideographic space to their half-width forms."""
    out = []
    for ch in text:
        code = ord(ch)
        if code == 0x3000:
            out.append(" ")
        elif 0xFF01 <= code <= 0xFF5E:
            out.append(chr(code - 0xFEE0))
        else:
            out.append(ch)
    return "".join(out)


@cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    return str(_t2s().convert(text)) if text else text


def is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


# What a chat client inserts into a typed turn: placeholders ([订单x], [金额x]) and field labels ending in a colon
# (订单号:, 下单时间:). Spoken text has neither; typed turns (the HTTP API, chat logs) do.
_PLACEHOLDER = re.compile(r"\[[^\[\]]{1,20}\]|[\u4e00-\u9fff]{2,6}[:：](?=\s*\[)")


def strip_placeholders(text: str) -> str:
    return _PLACEHOLDER.sub(" ", text)


def strip_noise(text: str) -> str:
    """Keep Han characters, ASCII letters and digits; drop punctuation, spaces, emoji."""
    return "".join(ch for ch in text if is_han(ch) or (ch.isascii() and ch.isalnum()))


def spoken_digits(text: str) -> str:
    """Runs of four or more spoken digits (二零二六幺幺洞九) become Arabic digits (2026110 9)."""
    return _DIGIT_RUN.sub(lambda m: "".join(_SPOKEN_DIGITS[c] for c in m.group()), text)


# --- dialect -----------------------------------------------------------------------------------


def _read_table(name: str) -> list[list[str]]:
    rows = []
    for line in (DATA_DIR / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            rows.append(line.rstrip("\n").split("\t"))
    return rows


@cache
def _dialect() -> tuple[re.Pattern[str], Mapping[str, str]]:
    table = {row[0]: row[1] if len(row) > 1 else "" for row in _read_table("dialect.tsv")}
    pattern = re.compile("|".join(re.escape(k) for k in sorted(table, key=lambda k: (-len(k), k))))
    return pattern, table


def standardize_dialect(text: str) -> str:
    """Dialect and colloquial words to standard Mandarin, longest entry first (咋整 before 咋)."""
    pattern, table = _dialect()
    return pattern.sub(lambda m: table[m.group()], text)


# --- pinyin ------------------------------------------------------------------------------------


def fuzzy_syllable(syllable: str) -> str:
    """A tone-less syllable in a canonical form that merges commonly confused sounds."""
    s = syllable.lower()
    for a, b in _FUZZY_INITIALS:
        if s.startswith(a):
            s = b + s[len(a) :]
    if s.startswith("n"):
        s = "l" + s[1:]
    if s.startswith("f"):
        s = "h" + s[1:]
    if s.startswith("hu") and len(s) > 2:  # 回 hui ~ 肥 fei, 黄 huang ~ 房 fang (southern speech)
        rest = s[2:]
        s = "h" + {"i": "ei", "n": "en"}.get(rest, rest)
    for a, b in _FUZZY_FINALS:
        if s.endswith(a):
            s = s[: -len(a)] + b
    return s


@cache
def char_readings(ch: str) -> frozenset[str]:
    """Every fuzzy reading of one character (all heteronyms); a non-Han character reads as itself."""
    if not is_han(ch):
        return frozenset({ch.lower()})
    readings = pinyin(ch, style=Style.NORMAL, heteronym=True)[0]
    return frozenset(fuzzy_syllable(r) for r in readings)


def word_syllables(word: str) -> tuple[str, ...]:
    """The fuzzy reading of a word in context, one syllable per character (ASCII reads as itself)."""
    syllables: list[str] = []
    for run in re.findall(r"[\u3400-\u4dbf\u4e00-\u9fff]+|[^\u3400-\u4dbf\u4e00-\u9fff]", word):
        if is_han(run[0]):
            syllables += [fuzzy_syllable(s) for s in lazy_pinyin(run, style=Style.NORMAL)]
        else:
            syllables.append(run.lower())
    return tuple(syllables)


@cache
def _common_words() -> frozenset[str]:
    """Words of up to four characters with a jieba frequency of at least COMMON_WORD_FREQ, plus shopping words.

    Read from the user's cache when it holds the list for this jieba version and these tables; reading
    jieba's whole dictionary takes longer than the rest of a start-up.
    """
    key = fingerprint(version("jieba"), str(COMMON_WORD_FREQ), (DATA_DIR / "common_words.txt").read_bytes())
    path = cache_dir() / f"common-words-{key}.txt"
    try:
        return frozenset(path.read_text(encoding="utf-8").split("\n"))
    except (OSError, UnicodeDecodeError):
        pass
    words = _jieba_words() | {row[0] for row in _read_table("common_words.txt")}
    try:
        write_atomically(path, lambda stream: stream.write("\n".join(sorted(words)).encode("utf-8")))
    except OSError as error:
        logging.getLogger(__name__).warning("could not cache the common words: %s", type(error).__name__)
    return frozenset(words)


def _jieba_words() -> set[str]:
    import jieba

    words = set()
    with jieba.get_dict_file() as stream:
        for line in stream.read().decode("utf-8").splitlines():
            word, freq, *_ = line.split(" ")
            if len(word) <= 4 and int(freq) >= COMMON_WORD_FREQ:
                words.add(word)
    return words


def is_common_word(span: str) -> bool:
    """An ordinary Chinese word (顺风, 一定, 包裹) that homophone repair must leave alone."""
    return span in _common_words()


# --- homophone repair --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LexiconWord:
    word: str
    syllables: tuple[str, ...]
    context: tuple[str, ...] = ()  # words that license replacing an ordinary word (顺风 → 顺丰 near 快递)


class HomophoneRepair:
    """Replaces spans whose fuzzy pinyin matches a lexicon word, unless the span is real speech."""

    def __init__(self, words: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        self._exact: set[str] = set()
        self._index: dict[str, list[LexiconWord]] = {}
        for word, context in words:
            syllables = word_syllables(word)
            if len(word) < 2 or len(syllables) != len(word) or word in self._exact:
                continue
            self._exact.add(word)
            self._index.setdefault(syllables[0], []).append(LexiconWord(word, syllables, context))
        for entries in self._index.values():
            entries.sort(key=lambda e: len(e.word), reverse=True)
        self._lengths = sorted({len(w) for w in self._exact}, reverse=True)

    def repair(self, text: str) -> str:
        out: list[str] = []
        i = 0
        while i < len(text):
            word, length = self._exact_at(text, i) or self._fuzzy_at(text, i) or (text[i], 1)
            out.append(word)
            i += length
        return "".join(out)

    def _exact_at(self, text: str, i: int) -> tuple[str, int] | None:
        for length in self._lengths:
            if text[i : i + length] in self._exact:
                return text[i : i + length], length
        return None

    def _fuzzy_at(self, text: str, i: int) -> tuple[str, int] | None:
        if not is_han(text[i]):
            return None
        for reading in sorted(char_readings(text[i])):
            for entry in self._index.get(reading, ()):
                if self._matches(text, i, entry) and _may_replace(text, i, entry):
                    return entry.word, len(entry.word)
        return None

    @staticmethod
    def _matches(text: str, i: int, entry: LexiconWord) -> bool:
        span = text[i : i + len(entry.word)]
        if len(span) != len(entry.word):
            return False
        for ch, want, syllable in zip(span, entry.word, entry.syllables, strict=True):
            if is_han(want) != is_han(ch) or (not is_han(ch) and ch != want):
                return False
            if syllable not in char_readings(ch):
                return False
        return True


def _may_replace(text: str, i: int, entry: LexiconWord) -> bool:
    """Guards against over-correction: shared characters, ordinary words, word edges."""
    n = len(entry.word)
    span = text[i : i + n]
    if n == 2 and span[0] != entry.word[0] and span[1] != entry.word[1]:
        return False
    if is_common_word(span) and not _has_context(text, i, n, entry.context):
        return False
    left, right = text[max(0, i - 1) : i + 1], text[i + n - 1 : i + n + 1]
    return not (len(left) == 2 and is_common_word(left)) and not (len(right) == 2 and is_common_word(right))


def _has_context(text: str, i: int, n: int, context: tuple[str, ...]) -> bool:
    around = text[max(0, i - CONTEXT_WINDOW) : i] + "|" + text[i + n : i + n + CONTEXT_WINDOW]
    return any(c in around for c in context)


@cache
def domain_lexicon() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The built-in lexicon (dialog/data/lexicon.tsv): word and optional |-separated context words."""
    rows = _read_table("lexicon.tsv")
    return tuple((row[0], tuple(filter(None, row[1].split("|"))) if len(row) > 1 else ()) for row in rows)


class Normalizer:
    """The whole normalisation pipeline; ``extra_words`` are the shop's product names and aliases."""

    def __init__(self, extra_words: Iterable[str] = ()) -> None:
        words = list(domain_lexicon()) + [(w, ()) for w in extra_words]
        self._repair = HomophoneRepair(words)

    def __call__(self, text: str) -> str:
        text = strip_noise(strip_placeholders(to_simplified(to_halfwidth(text))).upper())
        return standardize_dialect(self._repair.repair(spoken_digits(text)))


@cache
def _default() -> Normalizer:
    return Normalizer()


def normalize(text: str) -> str:
    """Normalise with the built-in lexicon only (no shop words)."""
    return _default()(text)
