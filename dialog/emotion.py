"""How the caller feels: a trained reading of the whole turn fused with cues and prosody.

Three readings are added up. A classifier trained on labelled turns (``dialog/train.py``,
``emotion_train.tsv``) reads the meaning of the whole turn, so accusing, sarcastic or fed-up
turns with no swear word still read as angry. Cues add what a short list says for sure: anger
words, blame, threats, sarcasm (呵呵, 真行) and rhetorical questions (有你们这么…的吗) make a caller
angry; urgency, worry, time already waited (都三天了) and repeated contacts make them anxious;
negation (不急, 慢慢来) cancels urgency; degree adverbs (非常/特别/太) amplify. Prosody (faster,
louder, higher than this caller earlier in the call) only raises arousal: it pushes a neutral text
towards anxious and mild irritation towards angry, but calm words spoken loudly never make a caller
angry on their own. Every cue that fired is named in ``Emotion.cues``
(``model:angry 0.71``, ``threat:12315``, ``prosody:louder+6dB``) so a transfer can say why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from core.types import Emotion, EmotionLabel, Prosody
from dialog.textmodel import TextClassifier
from dialog.train import emotion_classifier

_ANGER = {
    "气死": 0.5,
    "生气": 0.45,
    "火大": 0.45,
    "什么破": 0.5,
    "破玩意": 0.5,
    "破东西": 0.5,
    "垃圾": 0.5,
    "骗子": 0.5,
    "骗人": 0.5,
    "搞什么": 0.45,
    "太过分": 0.5,
    "过分": 0.4,
    "无语": 0.45,
    "坑人": 0.5,
    "坑爹": 0.5,
    "忽悠": 0.4,
    "扯淡": 0.5,
    "有病": 0.5,
    "滚": 0.5,
    "妈的": 0.6,
    "我靠": 0.5,
    "操蛋": 0.6,
    "烦死": 0.45,
    "恶心": 0.45,
    "黑店": 0.55,
    "耍我": 0.5,
    "糊弄": 0.45,
    "敷衍": 0.45,
    "受够了": 0.5,
    "不像话": 0.45,
    "岂有此理": 0.5,
    "欺负人": 0.5,
    "离谱": 0.4,
    "态度差": 0.45,
    "态度太差": 0.45,
    "什么态度": 0.5,
    "欺骗": 0.5,
    "诈骗": 0.55,
    "奸商": 0.55,
    "不讲理": 0.45,
    "不要脸": 0.6,
    "开什么玩笑": 0.45,
    "凭什么": 0.4,
    "什么玩意": 0.5,
    "什么东西啊": 0.3,
    "废物": 0.5,
    "智障": 0.55,
    "退钱": 0.25,
    "赔钱": 0.3,
    "忍无可忍": 0.6,
    "不靠谱": 0.3,
    "气人": 0.45,
    "撒谎": 0.5,
    "骗谁": 0.5,
    "耍人": 0.5,
    "当傻子": 0.5,
    "霸王条款": 0.5,
    "虚假宣传": 0.5,
    "虚假发货": 0.45,
    "杀熟": 0.45,
    "踢皮球": 0.45,
    "推卸": 0.4,
    "扯皮": 0.4,
    "形同虚设": 0.45,
    "摆设": 0.3,
    "石沉大海": 0.4,
    "窝火": 0.45,
    "寒心": 0.4,
    "失望": 0.3,
}
_THREATS = (
    "12315",
    "投诉",
    "差评",
    "曝光",
    "报警",
    "找媒体",
    "媒体",
    "工商",
    "消协",
    "消费者协会",
    "起诉",
    "告你们",
    "律师",
    "法院",
    "微博",
    "黑猫",
    "举报",
    "监管",
    "仲裁",
    "赔三",
    "赔十",
)
_THREAT_WEIGHT = 0.5
_BLAME = (
    re.compile(r"你们.{0,6}(?:的错|的问题|的责任)"),
    re.compile(r"(?:都怪|全怪|怪)你们"),
    re.compile(r"你们(?:怎么|到底)(?:搞|做|回事|办事)"),
    re.compile(r"干什么吃的"),
    re.compile(r"你们这是"),
    re.compile(r"再不(?:给我)?(?:解决|处理|退|发)"),
)
_BLAME_WEIGHT = 0.3
# Sarcasm (呵呵, 真行啊你们), rhetorical questions (有你们这么…的吗, 还要我等多久) and broken promises (说好的…怎么)
# accuse without an anger word.
_SARCASM = re.compile(r"呵呵|真行|真有你们的|厉害了|可真会|(?<!舒)服了|(?<!拒)绝了|我真的会谢|谢谢你们全家|长见识|笑死")
_RHETORICAL = (
    re.compile(r"有(?:你们)?这么.{0,8}的吗"),
    re.compile(r"(?:还要|要)我.{0,4}(?:等|说|跑|问|证明).{0,4}(?:多久|几遍|几次|到什么时候)"),
    re.compile(r"(?:怎么|还)好意思"),
    re.compile(r"(?:是不是|是在)(?:故意|耍|骗|糊弄)"),
    re.compile(r"(?:当|拿)我.{0,2}(?:傻|猴|好欺负)"),
    re.compile(r"要你们(?:有|干)"),
    re.compile(r"说好(?:的|了)?.{0,10}(?:怎么|结果|又|还没|没有?给|呢)"),  # a broken promise
)
_ACCUSE_WEIGHT = 0.35
# 都三天了 / 等了一个星期: time already waited, which wears a caller down.
_WAITED = re.compile(
    r"(?:都|已经|等了)(?:快|整整)?(?:[一二两三四五六七八九十几半\d]+|好几)个?(?:天|周|星期|礼拜|月|小时|钟头)"
)
_REPEAT = re.compile(
    r"又|第[二三四五六七八九两\d][次遍]|还是没|好几次|多少次|多少遍|每次都|一直没|[两三四五几\d][次遍]了"
    r"|打了好几"
)
_URGENT = (
    "越快越好",
    "明天就要",
    "马上就要",
    "等着穿",
    "等着用",
    "赶时间",
    "来不及",
    "等不了",
    "急着",
    "急用",
    "着急",
    "加急",
    "赶紧",
    "尽快",
    "快点",
    "马上",
    "急",
)
_CALM = ("不着急", "不用急", "不急", "别急", "不赶时间", "慢慢来", "没关系", "不要紧")
_WORRY = (
    "担心",
    "怕",
    "万一",
    "怎么办",
    "还没到",
    "没收到",
    "好几天",
    "不动",
    "没消息",
    "没动静",
    "怎么还",
    "赶不上",
    "一直",
    "太慢",
    "这么慢",
    "慢死",
)
_DEGREE = ("非常", "特别", "太", "真的", "超级", "极其", "实在", "简直", "死了", "透了", "到底", "究竟")
_DEGREE_GAIN = 1.3
_SAID_AGAIN = re.compile(r"(.{4,})(?:.{0,12})\1")  # 什么时候发货…什么时候发货: the caller repeats themselves
# After the bot reassured or asked to wait, a caller who pushes back (still/again/how long/you said) is fed up.
_REASSURED = re.compile(
    r"抱歉|不好意思|耐心|稍等|请等|已经(?:帮您|为您|给您)|催|反馈|登记|尽快|预计|正在处理|专员|理解您"
)
_PUSHBACK = re.compile(
    r"还要等|还没|还是没|又|到底|怎么还|几天了|等了|说好|不是说|每次|一直|总是|有什么用|没用|别再|还让我"
)
PUSHBACK_ANGER = 0.3
_MARKS = re.compile(r"[?？!！]{2,}")  # 到底发不发？？？ typed: impatience (spoken text has no marks)
ANGRY_TEXT = 0.4  # text anger from which a caller is angry whatever the prosody
FAST_RATE = 1.2  # rel_rate above which speech counts as faster than the caller's baseline
LOUD_DB = 4.0  # rel_energy_db above which speech counts as louder
HIGH_F0 = 1.15  # rel_f0 above which pitch counts as raised


@dataclass(frozen=True, slots=True)
class _Reading:
    anger: float
    anxiety: float
    cues: tuple[str, ...]


def _text_reading(text: str, raw: str = "", context: str = "") -> _Reading:
    anger, anxiety = 0.0, 0.0
    cues: list[str] = []
    pushback = _PUSHBACK.search(text) if context and _REASSURED.search(context) else None
    if pushback:
        anger, anxiety, cues = PUSHBACK_ANGER, 0.3, [f"pushback:{pushback.group()}"]
    marks = _MARKS.search(raw)
    if marks:
        anger, anxiety, cues = anger + 0.15, anxiety + 0.2, [*cues, f"marks:{marks.group()}"]
    said_again = _SAID_AGAIN.search(text)
    if said_again:
        anger, anxiety, cues = anger + 0.2, anxiety + 0.75, [*cues, f"said again:{said_again.group(1)}"]
    for word, weight in _ANGER.items():
        if word in text:
            anger, cues = anger + weight, [*cues, f"anger:{word}"]
    for word in _THREATS:
        if word in text:
            anger, cues = anger + _THREAT_WEIGHT, [*cues, f"threat:{word}"]
    for pattern in _BLAME:
        match = pattern.search(text)
        if match:
            anger, cues = anger + _BLAME_WEIGHT, [*cues, f"blame:{match.group()}"]
    accused = [m.group() for m in (_SARCASM.search(text), *(p.search(text) for p in _RHETORICAL)) if m]
    if accused:
        anger, cues = anger + _ACCUSE_WEIGHT, [*cues, f"accuse:{accused[0]}"]
    waited = _WAITED.search(text)
    if waited:
        anger, anxiety, cues = anger + 0.1, anxiety + 0.3, [*cues, f"waited:{waited.group()}"]
    for match in list(_REPEAT.finditer(text))[:2]:
        anger, anxiety, cues = anger + 0.15, anxiety + 0.2, [*cues, f"repeat:{match.group()}"]
    calm = [w for w in _CALM if w in text]
    rest = text
    for word in calm:
        rest = rest.replace(word, "")
    cues += [f"calm:{w}" for w in calm]
    urgent = [w for w in _URGENT if w in rest]
    if urgent:
        anxiety, cues = anxiety + 0.45, [*cues, f"urgency:{urgent[0]}"]
    for word in [w for w in _WORRY if w in rest][:2]:
        anxiety, cues = anxiety + 0.25, [*cues, f"worry:{word}"]
    degree = next((w for w in _DEGREE if w in text), None)
    if degree and (anger or anxiety):
        anger, anxiety, cues = anger * _DEGREE_GAIN, anxiety * _DEGREE_GAIN, [*cues, f"degree:{degree}"]
    return _Reading(anger, anxiety, tuple(cues))


def arousal(prosody: Prosody | None) -> tuple[float, tuple[str, ...]]:
    """0..1 from speech faster, louder or higher than the caller's baseline, with the cues that fired."""
    if prosody is None:
        return 0.0, ()
    value, cues = 0.0, []
    if prosody.rel_rate > FAST_RATE:
        value += 0.5 * min(1.0, (prosody.rel_rate - FAST_RATE) / 0.3 + 0.3)
        cues.append(f"prosody:faster x{prosody.rel_rate:.2f}")
    if prosody.rel_energy_db > LOUD_DB:
        value += 0.6 * min(1.0, (prosody.rel_energy_db - LOUD_DB) / 6 + 0.3)
        cues.append(f"prosody:louder{prosody.rel_energy_db:+.0f}dB")
    if prosody.rel_f0 > HIGH_F0:
        value += 0.4 * min(1.0, (prosody.rel_f0 - HIGH_F0) / 0.2 + 0.3)
        cues.append(f"prosody:higher pitch x{prosody.rel_f0:.2f}")
    return min(1.0, value), tuple(cues)


MODEL_WEIGHT = 1.0  # the trained reading's probability counts in full
CUE_WEIGHT = 0.6  # cue scores (0.4 for one anger word) are added at this weight
ANGRY_MIN = 0.55  # fused anger from which the turn is angry when a cue or the voice backs the reading
UNBACKED_ANGRY_MIN = 0.6  # the trained reading alone, with no cue and calm prosody, needs this much
ANXIOUS_MIN = 0.5  # fused arousal (anxiety plus half the anger) from which the turn is anxious
MODEL_CUE = 0.3  # the trained reading is named in the cues from this probability


def detect_emotion(
    text: str,
    prosody: Prosody | None = None,
    model: TextClassifier | None = None,
    raw: str = "",
    context: str = "",
    meaning: Mapping[str, float] | None = None,
) -> Emotion:
    """The caller's emotion in one turn; ``text`` should be normalised (dialect already standard).

    ``raw`` is the turn as typed or recognised, before punctuation was removed (for ？？？ and ！！);
    ``context`` what the bot said just before (pushing back after 「已经帮您催了」 is being fed up);
    ``meaning`` the label probabilities of the turn's sentence embedding (``dialog/meaning.py``),
    mixed half and half with the words' model.
    """
    reading = _text_reading(text, raw, context)
    level, prosody_cues = arousal(prosody)
    model = model or emotion_classifier()
    probs = dict(zip(model.labels, _row(model, text), strict=True))
    if meaning is not None:
        probs = {k: (1 - MEANING_WEIGHT) * p + MEANING_WEIGHT * meaning.get(k, 0.0) for k, p in probs.items()}
    p_angry, p_anxious = probs.get("angry", 0.0), probs.get("anxious", 0.0)
    learned = tuple(f"model:{n} {p:.2f}" for n, p in (("angry", p_angry), ("anxious", p_anxious)) if p >= MODEL_CUE)
    cues = learned + reading.cues + prosody_cues
    anger = MODEL_WEIGHT * p_angry + CUE_WEIGHT * reading.anger
    anxiety = MODEL_WEIGHT * p_anxious + CUE_WEIGHT * reading.anxiety
    floor = ANGRY_MIN if reading.anger or level else UNBACKED_ANGRY_MIN
    if reading.anger >= ANGRY_TEXT or anger >= floor or (level and anger >= 0.3 and anger + 0.3 * level >= ANGRY_MIN):
        return Emotion(EmotionLabel.ANGRY, round(min(1.0, 0.4 + 0.4 * anger + 0.2 * level), 3), cues)
    stirred = anxiety + 0.5 * anger + 0.5 * level
    if stirred >= ANXIOUS_MIN:
        return Emotion(EmotionLabel.ANXIOUS, round(min(1.0, 0.3 + 0.5 * stirred), 3), cues)
    return Emotion(EmotionLabel.NEUTRAL, round(max(0.5, 1.0 - stirred), 3), cues)


MEANING_WEIGHT = 0.5  # the turn's meaning against its words, in the learnt part of the reading
WINDOW = 12  # a long turn is also read in windows of this many characters
WINDOW_STEP = 6
WINDOW_WEIGHT = 0.85  # how much the most upset window counts against the whole turn


def _row(model: TextClassifier, text: str) -> list[float]:
    """Per label, the whole turn's probability or (discounted) its most upset window's, whichever is higher."""
    if not text:
        return [0.0] * len(model.labels)
    spans = [text] + [text[i : i + WINDOW] for i in range(0, max(0, len(text) - WINDOW) + 1, WINDOW_STEP)][
        : 40 if len(text) > WINDOW + WINDOW_STEP else 0
    ]
    rows = model.probabilities(spans)
    best = rows[1:].max(axis=0) * WINDOW_WEIGHT if len(spans) > 1 else rows[0]
    return [float(max(whole, window)) for whole, window in zip(rows[0], best, strict=True)]


# --- across turns ------------------------------------------------------------------------------


class EmotionTrend(StrEnum):
    RISING = "rising"
    STEADY = "steady"
    FALLING = "falling"


TREND_STEP = 0.15  # change in intensity over the last turns that counts as a trend
ESCALATE_SCORE = 0.7  # an angry turn at least this strong asks for a human


def intensity(emotion: Emotion) -> float:
    """One number per turn, 0 (calm) .. 1 (furious), for comparing turns."""
    if emotion.label is EmotionLabel.ANGRY:
        return 0.5 + 0.5 * emotion.score
    if emotion.label is EmotionLabel.ANXIOUS:
        return 0.5 * emotion.score
    return 0.0


def trend(emotions: Sequence[Emotion]) -> EmotionTrend:
    """Rising, steady or falling over the last three turns."""
    recent = [intensity(e) for e in emotions[-3:]]
    if len(recent) < 2:
        return EmotionTrend.STEADY
    change = recent[-1] - recent[0]
    if change >= TREND_STEP and recent[-1] >= recent[-2]:
        return EmotionTrend.RISING
    if change <= -TREND_STEP and recent[-1] <= recent[-2]:
        return EmotionTrend.FALLING
    return EmotionTrend.STEADY


def escalating(emotions: Sequence[Emotion]) -> bool:
    """True when a human should take over: angry at >= 0.7, or two rises in a row ending upset."""
    if not emotions:
        return False
    last = emotions[-1]
    if last.label is EmotionLabel.ANGRY and last.score >= ESCALATE_SCORE:
        return True
    levels = [intensity(e) for e in emotions[-3:]]
    return len(levels) == 3 and levels[0] < levels[1] < levels[2] and last.label is not EmotionLabel.NEUTRAL
