"""dialog.emotion: text cues, prosody relative to the caller's baseline, and the trend over turns."""

from __future__ import annotations

from core.types import Emotion, EmotionLabel, Prosody
from dialog.emotion import EmotionTrend, detect_emotion, escalating, intensity, trend
from dialog.normalize import normalize

CALM = Prosody(speech_rate=4.0, f0_mean=180.0, f0_std=20.0, energy_db=-25.0, pause_ratio=0.2, voiced_seconds=2.0)
LOUD_FAST = Prosody(
    speech_rate=5.6,
    f0_mean=220.0,
    f0_std=40.0,
    energy_db=-18.0,
    pause_ratio=0.05,
    voiced_seconds=2.0,
    rel_rate=1.4,
    rel_f0=1.2,
    rel_energy_db=7.0,
)


def feel(text: str, prosody: Prosody | None = None) -> Emotion:
    return detect_emotion(normalize(text), prosody)


def test_a_threat_to_call_12315_is_angry_and_says_why() -> None:
    emotion = feel("再不给我解决我就打12315投诉你们")
    assert emotion.label is EmotionLabel.ANGRY
    assert emotion.score >= 0.7
    assert "threat:12315" in emotion.cues and "threat:投诉" in emotion.cues


def test_anger_words_and_blame() -> None:
    assert feel("你们这什么破服务气死我了").label is EmotionLabel.ANGRY
    assert feel("垃圾店铺骗子").label is EmotionLabel.ANGRY
    blamed = feel("都怪你们发错了")
    assert any(c.startswith("blame:") for c in blamed.cues)


def test_urgency_is_anxious_not_angry() -> None:
    emotion = feel("我昨天买的这件衣服当时说有满减为什么付款时没显示现在还能不能改我急着穿最快什么时候到")
    assert emotion.label is EmotionLabel.ANXIOUS
    assert "urgency:急着" in emotion.cues


def test_negated_urgency_is_calm() -> None:
    emotion = feel("我不急慢慢来")
    assert emotion.label is EmotionLabel.NEUTRAL
    assert "calm:不急" in emotion.cues
    assert not any(c.startswith("urgency:") for c in emotion.cues)


def test_plain_question_is_neutral() -> None:
    assert feel("请问这件衣服有L码吗").label is EmotionLabel.NEUTRAL
    assert feel("").label is EmotionLabel.NEUTRAL


def test_calm_turns_that_address_the_shop_stay_neutral() -> None:
    """A caller who says 你们 / 知道吗 / 行不行 calmly is not transferred as angry (a whisper transcript)."""
    for text in ("我有的说不清楚你们知道吗", "你们那个保温杯能装开水吗知道吗", "那就周日下午送行不行"):
        assert feel(text).label is EmotionLabel.NEUTRAL, text


def test_pushing_back_after_being_asked_to_wait_is_fed_up() -> None:
    said = "已经帮您催了仓库，请您耐心等待。"
    pushed = detect_emotion(normalize("怎么还没发我都等了五天了"), context=said)
    alone = detect_emotion(normalize("怎么还没发我都等了五天了"))
    assert any(c.startswith("pushback:") for c in pushed.cues) and not any(
        c.startswith("pushback:") for c in alone.cues
    )
    assert intensity(pushed) > intensity(alone)
    thanks = detect_emotion(normalize("好的谢谢"), context=said)
    assert thanks.label is EmotionLabel.NEUTRAL and not any(c.startswith("pushback:") for c in thanks.cues)


def test_calm_words_loud_and_fast_are_anxious_never_angry() -> None:
    emotion = feel("我想问一下我的快递到哪了", LOUD_FAST)
    assert emotion.label is EmotionLabel.ANXIOUS
    assert "prosody:louder+7dB" in emotion.cues
    assert any(c.startswith("prosody:faster") for c in emotion.cues)


def test_calm_prosody_changes_nothing() -> None:
    assert feel("我想问一下我的快递到哪了", CALM).label is EmotionLabel.NEUTRAL
    assert feel("快递好几天都不动了", CALM) == feel("快递好几天都不动了")


def test_loud_prosody_tips_mild_irritation_into_anger() -> None:
    text = "你们的错凭什么让我出运费"
    assert feel(text, LOUD_FAST).label is EmotionLabel.ANGRY
    assert feel(text, LOUD_FAST).score > feel(text).score


def test_degree_adverbs_amplify() -> None:
    plain, strong = feel("我有点着急"), feel("我真的非常着急")
    assert plain.label is strong.label is EmotionLabel.ANXIOUS
    assert strong.score > plain.score
    assert any(c.startswith("degree:") for c in strong.cues)


def test_repeated_contacts_count() -> None:
    emotion = feel("这都第三次打电话了还是没解决")
    assert emotion.label is not EmotionLabel.NEUTRAL
    assert "repeat:第三次" in emotion.cues


def _e(label: EmotionLabel, score: float) -> Emotion:
    return Emotion(label, score)


def test_trend_rising_steady_falling() -> None:
    neutral, anxious, angry = _e(EmotionLabel.NEUTRAL, 0.9), _e(EmotionLabel.ANXIOUS, 0.6), _e(EmotionLabel.ANGRY, 0.8)
    assert trend([neutral, anxious, angry]) is EmotionTrend.RISING
    assert trend([angry, anxious, neutral]) is EmotionTrend.FALLING
    assert trend([anxious, anxious, anxious]) is EmotionTrend.STEADY
    assert trend([angry]) == "steady"


def test_escalating_on_strong_anger_or_two_rises() -> None:
    neutral, anxious = _e(EmotionLabel.NEUTRAL, 0.9), _e(EmotionLabel.ANXIOUS, 0.5)
    assert escalating([neutral, _e(EmotionLabel.ANGRY, 0.75)])
    assert not escalating([neutral, _e(EmotionLabel.ANGRY, 0.6)])
    assert escalating([neutral, anxious, _e(EmotionLabel.ANGRY, 0.6)])
    assert not escalating([anxious, anxious, anxious])
    assert not escalating([])


def test_sarcasm_and_rhetorical_questions_accuse_without_an_anger_word() -> None:
    for text, cue in (("呵呵你们可真行", "accuse:呵呵"), ("有你们这么卖东西的吗", "accuse:有你们这么卖东西的吗")):
        emotion = feel(text)
        assert emotion.label is EmotionLabel.ANGRY, text
        assert cue in emotion.cues
    assert not any(c.startswith("accuse:") for c in feel("申请被拒绝了想问下原因").cues)


def test_time_already_waited_is_named_and_not_calm() -> None:
    emotion = feel("都五天了物流还没更新")
    assert "waited:都五天" in emotion.cues
    assert emotion.label is not EmotionLabel.NEUTRAL
