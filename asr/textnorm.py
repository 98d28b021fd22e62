"""Recogniser text in one shape: Simplified Chinese, no spaces between Han characters, no punctuation.

Also the two text algorithms the recognisers share: character error rate (for tests and benchmarks)
and snapping a free hypothesis onto a grammar (a list of allowed phrases), which is how an engine
without a runtime grammar (whisper, a vosk model with a static HCLG graph) honours ``set_grammar``.
OpenCC and rapidfuzz are used inside ``asr/`` only here.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from opencc import OpenCC
from rapidfuzz.distance import Levenshtein

# Digits as callers say them; mapped to Arabic on both sides before comparing (CER, grammar snapping),
# so "订单20240518001" and "订单二零二四零五幺八零零幺" compare equal.
_DIGITS = str.maketrans("零〇幺一二两三四五六七八九", "0011223456789")


@functools.lru_cache(maxsize=1)
def _t2s() -> OpenCC:
    return OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional → Simplified Chinese (OpenCC ``t2s``); other scripts pass through unchanged."""
    return _t2s().convert(text)


def is_han(ch: str) -> bool:
    """True for a CJK ideograph (basic block, extension A, compatibility, extensions B+)."""
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x3FFFF
    )


def strip_punctuation(text: str) -> str:
    """Drop Unicode punctuation (，。？! etc.); symbols such as % and ¥ stay."""
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))


def join_words(words: Iterable[str]) -> str:
    """Join recognised words: no space where either side is a Han character, one space otherwise.

    ``["我", "想", "买", "iPhone", "13"]`` → ``"我想买iPhone 13"``.
    """
    out = ""
    for word in (w.strip() for w in words):
        if not word:
            continue
        if out and not is_han(out[-1]) and not is_han(word[0]):
            out += " "
        out += word
    return out


def clean_text(text: str) -> str:
    """Recogniser output as the rest of the hotline sees it: Simplified, no punctuation, Han unspaced."""
    return join_words(strip_punctuation(to_simplified(unicodedata.normalize("NFKC", text))).split())


def normalize_for_compare(text: str) -> str:
    """The comparison form: ``clean_text`` without any spaces, lower case, Chinese digits as Arabic."""
    cleaned = clean_text(text).lower().translate(_DIGITS)
    return "".join(ch for ch in cleaned if not ch.isspace() and unicodedata.category(ch)[0] != "S")


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate: Levenshtein distance over characters of the normalised texts / reference length."""
    ref, hyp = normalize_for_compare(reference), normalize_for_compare(hypothesis)
    return Levenshtein.distance(ref, hyp) / max(1, len(ref))


@dataclass(frozen=True, slots=True)
class PhraseMatch:
    """One grammar phrase found in a hypothesis, covering ``hypothesis[start:end]`` (comparison form)."""

    phrase: str
    start: int
    end: int
    score: float  # 0..1, 1 = the span equals the phrase


@dataclass(frozen=True, slots=True)
class Snap:
    matches: tuple[PhraseMatch, ...]
    score: float  # 0..1 over the whole hypothesis; unmatched characters count as errors

    @property
    def text(self) -> str:
        return join_words(m.phrase for m in self.matches)


def snap_to_phrases(hypothesis: str, phrases: Sequence[str], min_score: float = 0.5) -> Snap | None:
    """The sequence of grammar phrases closest to ``hypothesis`` (``None`` if none matches well enough).

    A small decoder over characters of the comparison form, the way vosk's grammar decodes a sequence
    of phrases with ``[unk]`` for the rest: each step explains the next span with one phrase (cost =
    edit distance) or skips one character as noise (cost 1). Equal costs go to the path with fewer phrases
    whose span starts on another character (a Chinese answer's head carries its polarity: 不是的 is
    不是, not 是的), then to fewer skipped characters, then to fewer phrases, then to the phrase listed
    first. So
    ``["是的", "不是"]`` maps "是的。" → 是的, "是" → 是的, "不是的" → 不是, "我要退款" with 退款 → 退款,
    and a digits grammar maps "幺3八" → 一 三 八. ``score`` is how well the chosen phrases match their
    spans (skipped noise does not lower it); under ``min_score``, or with no phrase at all, ``None``.
    """
    hyp = normalize_for_compare(hypothesis)
    forms = [(p, f) for p in phrases if (f := normalize_for_compare(p))]
    if not hyp or not forms:
        return None
    _, edits, matches = _cover(hyp, forms)[len(hyp)]
    if not matches:
        return None
    covered = sum(max(len(normalize_for_compare(m.phrase)), m.end - m.start) for m in matches)
    score = max(0.0, 1.0 - edits / covered)
    return Snap(matches=matches, score=score) if score >= min_score else None


_Key = tuple[int, int, int, int]  # (edit cost incl. skipped chars, head mismatches, skipped chars, phrases)
_Cell = tuple[_Key, int, tuple[PhraseMatch, ...]]  # (key, phrase edits, matches)


def _cover(hyp: str, forms: Sequence[tuple[str, str]]) -> list[_Cell]:
    """``best[i]`` = best explanation of ``hyp[:i]`` as phrases and skipped characters."""
    start: _Cell = ((0, 0, 0, 0), 0, ())
    unreached: _Cell = ((len(hyp) * 10 + 1, 0, 0, 0), 0, ())
    best = [start] + [unreached] * len(hyp)
    for i in range(1, len(hyp) + 1):
        (cost, heads, skipped, count), edits, matches = best[i - 1]
        cell: _Cell = ((cost + 1, heads, skipped + 1, count), edits, matches)
        for phrase, form in forms:
            for j in range(max(0, i - len(form) - 2), i):
                span = hyp[j:i]
                dist = Levenshtein.distance(form, span)
                if dist >= len(form):
                    continue  # shares nothing useful with the phrase
                (cost, heads, skipped, count), edits, matches = best[j]
                key = (cost + dist, heads + (form[0] != span[0]), skipped, count + 1)
                if key < cell[0]:
                    match = PhraseMatch(phrase, j, i, 1.0 - dist / max(len(form), len(span)))
                    cell = (key, edits + dist, (*matches, match))
        best[i] = cell
    return best
