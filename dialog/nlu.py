"""One caller turn to an ``Understanding``: every need (main need first) with its slots, and the emotion.

How several needs are found in one breath of unpunctuated ASR text: the normalised text is cut into
clauses before discourse cues (还有, 另外, 然后, 顺便, 为什么, 什么时候, 能不能…); the whole text,
every clause, every pair of neighbouring clauses and every cut of a long clause into two halves
(needs said without any cue) are classified in one batch; a label is kept when its window is
confident enough, and of two labels that name the same need the stronger stays. Rules cover what
rules say more clearly than a classifier: short answers (对/是的/不用了), asking for a human
(转人工), threats that make a complaint (12315, 投诉).

Context: in a live call the bot's previous utterance is known. A short turn that does not say its
topic (「要多久」, 「那怎么办」) is read together with it: the previous utterance is classified too and
that reading is added to the turn's own (``CONTEXT_WEIGHT``), so 「要多久」 after 「已经帮您催了」
is about the parcel and after 「退款已经提交了」 about the refund. 「好的」/「可以」 after a question is an
answer either way (the short-answer rules).

Order: a complaint first, then the need the whole turn is mostly about, then the other needs in the
order they were said, then a request for a human (after the need it is about); affirm/deny and
goodbye last; a bare greeting only when nothing else was said.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from core.types import Intent, Prosody, Understanding
from dialog.emotion import detect_emotion
from dialog.meaning import MeaningHead, embed
from dialog.normalize import Normalizer, is_han
from dialog.slots import extract_slots
from dialog.textmodel import TextClassifier
from dialog.train import ProductMask, default_classifier, emotion_classifier, emotion_head, intent_head
from dialog.vocabulary import Vocabulary

MAX_CHARS = 400  # longer turns are understood from their first 400 normalised characters
MAX_CLAUSES = 10
MIN_CLAUSE = 4  # shorter clauses join the next one (最快 + 什么时候到)
WHOLE_MIN = 0.15  # the whole turn's top label is kept from this probability (CV: below it "other" is likelier)
WINDOW_MIN = 0.4  # a clause or clause pair adds its top label from this probability
MAX_INTENTS = 4
SPLIT_MIN_CHARS = 8  # a clause this long may hold two needs said without a cue (衣服厚不厚发票没收到)
SPLIT_MAX_CHARS = 30
SPLIT_MIN = 0.8  # both halves of such a cut must be at least this confident
MIN_NEED = 6  # an opening 喂你好/请问 is dropped only when at least this much follows it
OTHER_CEILING = 0.4  # "other" means not understood, so it never carries a confident score
CONTEXT_MAX_CHARS = 12  # a turn this short may lean on the bot's previous utterance for its topic
CONTEXT_TAIL = 40  # the end of the previous utterance is what the turn answers
MEANING_WEIGHT = 0.5  # the whole turn's reading: this much from its meaning (dialog/meaning.py), the rest TF-IDF
SOCIAL_SURE = 0.6  # a turn read this surely as thanks/bye/yes/no keeps that reading whatever the bot said
CONTEXT_WEIGHT = 1.0  # the turn read with the previous utterance counts as much as the turn alone (tuned on
# context_test.tsv: a short turn's own reading is often sure and wrong, 「要多久」 alone is about shipping)

# Connectors start a new clause and are dropped from it; question cues start a new clause and stay in it.
_CONNECTORS = tuple(
    (
        "还有就是 还有 另外 然后 顺便问下 顺便问一下 顺便 再就是 再一个 还想问一下 还想问下 还想问 "
        "还要问 对了 而且 以及 不过 再问下 再问一下 再说"
    ).split()
)
_QUESTION_CUES = tuple(
    (
        "能不能 可不可以 能否 还能不能 还能 为什么 什么时候 怎么 最快 现在 我急 我想 我要 帮我 "
        "麻烦 请问 但是 可是 结果 你好 您好 谢谢 再见 要是"
    ).split()
)
_STOCK_AFTER = r"(?!货|吗|没|库存|现货|码|别的|多少|几|剩|的|[A-Z0-9]|[一二两三四五六七八九十])"
_CUE_PATTERN = re.compile(
    "|".join(
        [f"(?P<c{i}>{re.escape(c)}){_STOCK_AFTER if c == '还有' else ''}" for i, c in enumerate(_CONNECTORS)]
        + [re.escape(c) for c in sorted(_QUESTION_CUES, key=len, reverse=True)]
    )
)
_FILLERS = re.compile(r"^(?:嗯|啊|哦|噢|呃|额|那个|就是)+|(?:啊|呀|吧|呢|哈|哦|嘛|啦|的)+$")
_LEADING = re.compile(
    r"^(?:喂+|你好|您好|哈喽|嗨|在吗|请问|我想问一下|我想问下|想问一下|想问下|问一下"
    r"|麻烦问下|麻烦问一下|那个|嗯|呃|啊)+"
)
_GREETING_START = re.compile(r"^(?:喂|你好|您好|哈喽|嗨|在吗)")
_REPEATS = re.compile(r"(.)\1{2,}")  # 对对对对 reads as 对对
_AFFIRM = frozenset(
    (
        "对 对的 是 是的 嗯 嗯嗯 好 好的 行 行的 可以 可以的 没问题 对对 对对对 没错 对没错 "
        "确认 好的可以 中 中中 OK 同意 是我 嗯对 嗯好 好嘞 当然 那行 是这个 就是这个 就这个"
    ).split()
)
_DENY = frozenset(
    (
        "不是 不对 不用 不用了 不要 没有 不行 算了 错了 不需要 不了 否 不必 不是的 不对不对 "
        "不要了 不不 不用不用 不可以 没有了 都不是 不同意"
    ).split()
)
_GREETING = frozenset({"你好", "您好", "喂", "喂你好", "喂您好", "喂喂", "喂喂喂", "在吗", "有人吗", "哈喽", "嗨"})
_HUMAN = re.compile(
    r"转人工|人工客服|人工服务|找人工|要人工|接人工|转接人工|真人|活人|转客服|转个客服"
    r"|不想跟机器人"
)
_HOURS = re.compile(
    r"几点|上班|下班|营业时间|工作时间|服务时间|上班时间|几时|什么时候有人|什么时间有人"
    r"|二十四小时|24小时"
)
_SERVICE = re.compile(r"人工|客服|你们|售后|热线|电话")
_TRANSFER = re.compile(r"转|接通|找人工|要人工|叫个|换个人|现在就")
# Explicit criticism of the service makes a complaint (plain impatience does not).
_CRITICISM = re.compile(
    r"服务(?:太|真|很|也太|这么)?差|态度(?:太|真|很|也太|这么)?(?:差|恶劣)|什么态度|什么破"
    r"|垃圾|骗子|骗人|坑人|黑店|奸商|不负责|差评|敷衍|推卸|不作为|欺骗|欺负人|太差劲|什么服务"
)
_THREAT = re.compile(r"12315|投诉|消协|消费者协会|工商(?!银行)|曝光|找媒体|报警|起诉|告你们")
_ID_MENTION = re.compile(
    r"(?:我的|这个|那个)?(?:订单号码|订单号|订单编号|单号|订单)?(?:是|为)?"
    r"(?:[A-Z]{1,4}\d{6,}|\d{8,})"
)  # any shop's numbers: letters then digits, or digits
_ANSWERS = ("affirm", "deny")
_SOCIAL = ("greeting", "goodbye", *_ANSWERS)
_CONFUSABLE = (
    {"promotion.inquiry", "promotion.not_applied"},
    {"logistics.ship_time", "logistics.expedite"},
    {"logistics.track", "logistics.ship_time"},
    {"logistics.track", "order.status"},
    {"order.status", "logistics.ship_time"},
    {"aftersale.exchange", "order.modify"},
    {"promotion.inquiry", "promotion.bundle"},
)
_NO_SLOTS = frozenset({"greeting", "goodbye"})
_NO_TOPIC = frozenset({*_SOCIAL, "other", "human_agent", "complaint"})  # what a bot utterance cannot lend a turn
_TASK_ONLY = {
    "urgency": frozenset(
        {
            "logistics.track",
            "logistics.ship_time",
            "logistics.carrier",
            "logistics.expedite",
            "order.modify",
            "order.cancel",
            "order.status",
            "aftersale.return",
            "aftersale.refund_status",
            "aftersale.exchange",
            "aftersale.damage",
            "inventory.stock",
            "complaint",
            "human_agent",
        }
    ),
    "promotion": frozenset(
        {
            "promotion.inquiry",
            "promotion.not_applied",
            "promotion.bundle",
            "order.modify",
            "order.status",
            "aftersale.refund_status",
            "complaint",
        }
    ),
}
_TASK_ONLY["coupon"] = _TASK_ONLY["promotion"]


@dataclass(frozen=True, slots=True)
class Span:
    """A window of the normalised text: where it starts and what it says."""

    start: int
    text: str
    whole: bool = False


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    confidence: float
    span: Span


# --- clauses -----------------------------------------------------------------------------------


def split_clauses(text: str) -> list[Span]:
    """Cut before each discourse cue, dropping connectors; a clause under MIN_CLAUSE joins the next."""
    pieces: list[Span] = []
    start = 0
    for match in _CUE_PATTERN.finditer(text):
        if match.start() > start:
            pieces.append(Span(start, text[start : match.start()]))
        start = match.end() if match.lastgroup else match.start()
    if start < len(text):
        pieces.append(Span(start, text[start:]))
    return _merge_short(pieces, text)


def _merge_short(pieces: list[Span], text: str) -> list[Span]:
    merged: list[Span] = []
    pending: Span | None = None
    for piece in pieces:
        if pending is not None:
            piece = Span(pending.start, text[pending.start : piece.start + len(piece.text)])
        pending = piece if len(piece.text) < MIN_CLAUSE else None
        if pending is None:
            merged.append(piece)
    if pending is not None:
        if merged:
            last = merged.pop()
            merged.append(Span(last.start, text[last.start : pending.start + len(pending.text)]))
        else:
            merged.append(pending)
    if len(merged) > MAX_CLAUSES:
        tail = merged[MAX_CLAUSES - 1]
        merged = [*merged[: MAX_CLAUSES - 1], Span(tail.start, text[tail.start :])]
    return merged


def windows(text: str) -> list[Span]:
    """The whole text, each clause, and each pair of neighbouring clauses (whole first)."""
    clauses = split_clauses(text)
    spans = [Span(0, text, whole=True)]
    if len(clauses) > 1:
        spans += clauses
        spans += [
            Span(a.start, _strip_connectors(text[a.start : b.start + len(b.text)]))
            for a, b in zip(clauses, clauses[1:], strict=False)
        ]
    return spans


def _strip_connectors(text: str) -> str:
    """A pair window reads as one clause: connectors between its parts go."""
    return _CUE_PATTERN.sub(lambda m: "" if m.lastgroup else m.group(), text)


def without_ids(text: str) -> str:
    """The text the classifier reads: order numbers and an opening 喂你好/请问 removed.

    "订单号WY2026…那件白T换成L码" is about changing a size, not about the order's status, and
    "你好我想问下…" says nothing about the need; a turn that is nothing but those is left as it is.
    """
    rest = _ID_MENTION.sub("", text)
    rest = rest if len(rest) >= 2 else text
    need = _LEADING.sub("", rest)
    return need if len(need) >= MIN_NEED else rest


# --- rules -------------------------------------------------------------------------------------


def short_answer(text: str) -> str | None:
    """affirm / deny / greeting for a short turn that is only that (对的, 不用了, 喂你好)."""
    core = _REPEATS.sub(r"\1\1", _FILLERS.sub("", text) or text)
    half = len(core) // 2
    if len(core) % 2 == 0 and core[:half] == core[half:]:  # 可以可以, 好的好的
        core = core[:half]
    if len(core) > 6:
        return None
    for name, phrases in (("affirm", _AFFIRM), ("deny", _DENY), ("greeting", _GREETING)):
        if core in phrases:
            return name
    return None


def asks_service_hours(text: str) -> bool:
    """「你们人工客服几点上班」 asks when people are there; it does not ask to be put through now."""
    return bool(_HOURS.search(text) and _SERVICE.search(text)) and not _TRANSFER.search(text)


def _rule_candidates(text: str) -> list[Candidate]:
    found = []
    if asks_service_hours(text):
        found.append(Candidate("service.hours", 0.9, Span(0, text, whole=True)))
    human = None if found else _HUMAN.search(text)
    if human:
        found.append(Candidate("human_agent", 0.95, Span(human.start(), human.group())))
    threat = _THREAT.search(text) or _CRITICISM.search(text)
    if threat:
        found.append(Candidate("complaint", 0.9, Span(threat.start(), threat.group())))
    return found


# --- choosing and ordering ---------------------------------------------------------------------


def _classified(
    classifier: TextClassifier,
    mask: ProductMask,
    text: str,
    topic: np.ndarray | None = None,
    meaning: np.ndarray | None = None,
) -> tuple[list[Candidate], str]:
    """Confident top labels of the windows and of the best two-need split of each long clause.

    Also returns the whole text's top label. Everything is classified in one batch, products masked.
    ``topic``: the short turn read after the previous bot utterance, added to the whole turn's reading.
    ``meaning``: the whole turn's label probabilities from its sentence embedding, mixed into its reading.
    """
    spans, clauses = windows(text), split_clauses(text)
    splits = [pair for clause in clauses for pair in _halves(clause)]
    rows = classifier.probabilities([mask(s.text) for s in spans] + [mask(h.text) for pair in splits for h in pair])
    if meaning is not None:
        rows[0] = (1.0 - MEANING_WEIGHT) * rows[0] + MEANING_WEIGHT * meaning
    own = classifier.labels[int(rows[0].argmax())]
    if topic is not None and not (own in _SOCIAL and float(rows[0].max()) >= SOCIAL_SURE):
        leaned = rows[0] + CONTEXT_WEIGHT * topic  # a sure 好的谢谢/再见 is not lent the bot's topic
        rows[0] = leaned / leaned.sum()
    top = [(classifier.labels[int(r.argmax())], float(r.max())) for r in rows]
    found = [
        Candidate(name, p, span)
        for span, (name, p) in zip(spans, top, strict=False)
        if p >= (WHOLE_MIN if span.whole else WINDOW_MIN)
    ]
    found += _best_splits(splits, top[len(spans) :])
    return found, top[0][0]


def _meaning_of(text: str) -> np.ndarray | None:
    """The sentence embedding of the need in ``text``; None for what rules read alone (对 / 不用了 / noise)."""
    need = without_ids(text)
    if short_answer(need) is not None or not any(is_han(ch) for ch in need):
        return None
    return embed([need])


def _columns(head: MeaningHead, labels: tuple[str, ...]) -> list[int]:
    """The head's columns in the order of ``labels`` (both are trained on the same intents)."""
    missing = set(labels) - set(head.labels)
    if missing:
        raise ValueError(f"the meaning head does not know the intents {sorted(missing)}: retrain it")
    return [head.labels.index(name) for name in labels]


def _halves(clause: Span) -> list[tuple[Span, Span]]:
    """Every cut of a clause into two parts of at least MIN_CLAUSE characters (needs said without a cue)."""
    n = len(clause.text)
    if not SPLIT_MIN_CHARS <= n <= SPLIT_MAX_CHARS:
        return []
    return [
        (Span(clause.start, clause.text[:k]), Span(clause.start + k, clause.text[k:]))
        for k in range(MIN_CLAUSE, n - MIN_CLAUSE + 1)
    ]


def _best_splits(splits: list[tuple[Span, Span]], top: list[tuple[str, float]]) -> list[Candidate]:
    """Per clause, the cut whose two halves are both confidently different needs."""
    best: dict[int, tuple[float, list[Candidate]]] = {}
    for index, (left, right) in enumerate(splits):
        (name_l, p_l), (name_r, p_r) = top[2 * index], top[2 * index + 1]
        if name_l == name_r or "other" in (name_l, name_r) or min(p_l, p_r) < SPLIT_MIN:
            continue
        score = min(p_l, p_r)
        if score > best.get(left.start, (0.0, []))[0]:
            best[left.start] = (score, [Candidate(name_l, p_l, left), Candidate(name_r, p_r, right)])
    return [c for _, pair in best.values() for c in pair]


def _best_per_name(candidates: list[Candidate]) -> dict[str, Candidate]:
    best: dict[str, Candidate] = {}
    for candidate in candidates:
        held = best.get(candidate.name)
        if held is None or candidate.confidence > held.confidence:
            best[candidate.name] = candidate
    return best


def _resolve(best: dict[str, Candidate], whole_top: str) -> dict[str, Candidate]:
    """Of two labels that name the same need keep the whole turn's, else the stronger; other/greeting
    only when alone."""
    for pair in _CONFUSABLE:
        if pair <= best.keys():
            keep = whole_top if whole_top in pair else max(sorted(pair), key=lambda n: best[n].confidence)
            best.pop(next(n for n in pair if n != keep))
    if len(best) > 1:
        best.pop("other", None)
    if any(n not in _SOCIAL for n in best):
        best.pop("greeting", None)
    return best


def _rank(candidate: Candidate, whole_top: str) -> tuple[int, int, int]:
    name = candidate.name
    if name == "complaint":
        group = 0
    elif name == "human_agent":
        group = 2  # after the need it is about: 「退款的事转人工」 is about the refund
    elif name in _ANSWERS or name == "goodbye":
        group = 3
    elif name in _SOCIAL or name == "other":
        group = 4
    else:
        group = 1
    return group, 0 if name == whole_top else 1, candidate.span.start


def _slots_for(name: str, clause: dict[str, str], whole: dict[str, str]) -> dict[str, str]:
    if name in _NO_SLOTS:
        return {}
    merged = {**whole, **clause}
    return {k: v for k, v in merged.items() if k not in _TASK_ONLY or name in _TASK_ONLY[k]}


# --- the understander --------------------------------------------------------------------------


class Understander:
    """Understands caller turns against one shop's vocabulary; safe to share between calls."""

    def __init__(self, vocabulary: Vocabulary, cache_dir: Path | None = None) -> None:
        """``cache_dir``: where trained models are kept (default: the user's cache, ``~/.cache/ivr/nlu``)."""
        self._vocabulary = vocabulary
        self._normalize = Normalizer(vocabulary.lexicon())
        self._classifier = default_classifier(cache_dir)
        self._emotion = emotion_classifier(cache_dir)
        self._head = intent_head(cache_dir)
        self._head_columns = _columns(self._head, self._classifier.labels)
        self._feeling = emotion_head(cache_dir)
        embed(["喂"])  # the embedding model loads now, not during the first caller's turn
        self._mask = ProductMask(tuple(vocabulary.terms))

    def understand(
        self, text: str, now: datetime, prosody: Prosody | None = None, context: str | None = None
    ) -> Understanding:
        """Every need in ``text`` (main need first) with slots, and the caller's emotion.

        ``context``: what the bot said just before this turn, if anything (a short turn leans on it).
        """
        normalized = self._normalize(text)
        focus = normalized[:MAX_CHARS]
        vector = _meaning_of(focus)
        intents = self._intents(focus, now, context, vector)
        feeling = None
        if vector is not None:
            feeling = dict(zip(self._feeling.labels, map(float, self._feeling.probabilities(vector)[0]), strict=True))
        emotion = detect_emotion(focus, prosody, self._emotion, text, context or "", feeling)
        return Understanding(text, normalized, intents, emotion)

    def _topic(self, context: str | None, turn: str) -> np.ndarray | None:
        """The topic of the previous bot utterance read with the turn: label probabilities, social labels zeroed."""
        if not context or not context.strip() or len(turn) > CONTEXT_MAX_CHARS:
            return None
        said = self._normalize(context)[-CONTEXT_TAIL:]
        row = self._classifier.probabilities([self._mask(said + turn)])[0]
        row[[i for i, name in enumerate(self._classifier.labels) if name in _NO_TOPIC]] = 0.0
        total = float(row.sum())
        return row / total if total > 0 else None

    def _intents(
        self, text: str, now: datetime, context: str | None = None, vector: np.ndarray | None = None
    ) -> tuple[Intent, ...]:
        """``vector``: the turn's sentence embedding (``dialog/meaning.py``), when it was made."""
        whole_slots = extract_slots(text, now, self._vocabulary)
        focus = without_ids(text)
        answer = short_answer(focus)
        if answer is not None:
            return (Intent(answer, 0.95, _slots_for(answer, {}, whole_slots)),)
        if not any(is_han(ch) for ch in focus) or (len(text) >= 3 and len(set(text)) == 1):
            return (Intent("other", 0.0, _slots_for("other", {}, whole_slots)),)  # no words, or noise (的的的的)
        meaning = None if vector is None else self._head.probabilities(vector)[0][self._head_columns]
        found, whole_top = _classified(self._classifier, self._mask, focus, self._topic(context, focus), meaning)
        rules = _rule_candidates(focus)
        if any(c.name == "service.hours" for c in rules):
            found = [c for c in found if c.name != "human_agent"]
        chosen = _resolve(_best_per_name(found + rules), whole_top)
        if (not chosen or set(chosen) == {"other"}) and _GREETING_START.match(text):
            return (Intent("greeting", 0.8),)  # 您好我想咨询一下: a greeting, the need still to come
        if not chosen:
            p_other = dict(self._classifier.ranked(self._mask(focus))).get("other", 0.0)
            return (Intent("other", round(min(OTHER_CEILING, p_other), 3), _slots_for("other", {}, whole_slots)),)
        ordered = sorted(chosen.values(), key=lambda c: _rank(c, whole_top))[:MAX_INTENTS]
        return tuple(self._intent(c, whole_slots, now) for c in ordered)

    def _intent(self, candidate: Candidate, whole_slots: dict[str, str], now: datetime) -> Intent:
        clause_slots = {} if candidate.span.whole else extract_slots(candidate.span.text, now, self._vocabulary)
        confidence = candidate.confidence if candidate.name != "other" else min(OTHER_CEILING, candidate.confidence)
        return Intent(candidate.name, round(confidence, 3), _slots_for(candidate.name, clause_slots, whole_slots))
