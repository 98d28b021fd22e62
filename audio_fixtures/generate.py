"""Generate the Mandarin caller utterances used by the ASR, VAD, prosody and NLU tests.

Run from the repository root (``make fixtures`` does the same)::

    .venv/bin/python audio_fixtures/generate.py

It deletes the fixtures it made before and writes, for each utterance in ``UTTERANCES``:

- ``NN_<intent>_<style>.wav``: 8 kHz mono G.711 μ-law (format 7), what a phone line carries;
- ``NN_<intent>_<style>.json``: the sidecar ``{"text", "intent", "rate_wpm", "amplitude",
  "style", "voice", "spoken"}``; ``text`` is what the caller means (the transcript a recogniser
  should produce), ``spoken`` what espeak-ng was given (``voice.tts_text.speakable``: order and phone
  numbers digit by digit with 幺 for 1, as a Chinese caller says them);

and ``manifest.json`` listing them all with their durations. Output is deterministic for a
given espeak-ng version (recorded in the manifest): no randomness, no timestamps.

Speech comes from ``voice.tts.Synthesizer``, so the fixtures sound like the hotline's own TTS
path; its voice ``cmn`` is espeak-ng's ``cmn-latn-pinyin`` (why: see ``voice/tts.py``), with two
variants (``+f3`` female, ``+m3`` male) for speaker variety.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from core.errors import IvrError, ModelMissingError
from voice.codec import pcm16_to_ulaw
from voice.tts import Synthesizer
from voice.tts_espeak import EspeakVoice
from voice.tts_text import speakable
from voice.wav import to_rate, write_ulaw_wav

HERE = Path(__file__).resolve().parent
VOICES = ("cmn", "cmn+f3", "cmn+m3")
STYLES = {  # style -> (words per minute, amplitude 0..200)
    "normal": (175, 100),
    "fast": (260, 100),
    "loud": (175, 200),
    "fast_loud": (260, 200),
    "slow": (120, 100),
}
RATE = 8000


@dataclass(frozen=True)
class Utterance:
    text: str
    intent: str
    style: str


UTTERANCES = (
    Utterance("我的快递怎么还没到", "logistics.track", "normal"),
    Utterance("这玩意咋回事好几天不动弹", "logistics.track", "fast_loud"),
    Utterance("订单20240518001到哪了", "logistics.track", "normal"),
    Utterance("物流信息三天没更新了", "logistics.track", "loud"),
    Utterance("今天下单什么时候能发货", "logistics.ship_time", "normal"),
    Utterance("付款以后多久发货", "logistics.ship_time", "slow"),
    Utterance("你们发什么快递，能发顺丰吗", "logistics.carrier", "normal"),
    Utterance("可以换成中通吗", "logistics.carrier", "fast"),
    Utterance("我急着穿能不能快点发", "logistics.expedite", "fast"),
    Utterance("麻烦帮我催一下发货", "logistics.expedite", "normal"),
    Utterance("白色L码还有货吗", "inventory.stock", "normal"),
    Utterance("这款黑色的什么时候补货", "inventory.stock", "slow"),
    Utterance("这个外套是什么面料的", "product.info", "normal"),
    Utterance("这款鞋子偏大还是偏小", "product.info", "fast"),
    Utterance("现在有什么优惠活动", "promotion.inquiry", "normal"),
    Utterance("满300减50能和优惠券一起用吗", "promotion.inquiry", "fast"),
    Utterance("直播价还能买吗", "promotion.inquiry", "slow"),
    Utterance("满减为什么没减", "promotion.not_applied", "loud"),
    Utterance("我领的优惠券怎么用不了", "promotion.not_applied", "normal"),
    Utterance("买两件是不是打八折", "promotion.bundle", "normal"),
    Utterance("第二件半价吗", "promotion.bundle", "fast"),
    Utterance("我想改一下收货地址", "order.modify", "normal"),
    Utterance("没发货的话帮我改尺码", "order.modify", "slow"),
    Utterance("我不想要了，帮我取消订单", "order.cancel", "normal"),
    Utterance("订单20240520317帮我取消", "order.cancel", "fast"),
    Utterance("我的订单现在是什么状态", "order.status", "normal"),
    Utterance("查一下我刚才下的单", "order.status", "slow"),
    Utterance("我要退货", "aftersale.return", "normal"),
    Utterance("七天无理由能退吗", "aftersale.return", "slow"),
    Utterance("退款什么时候到账", "aftersale.refund_status", "normal"),
    Utterance("我的退款怎么还没到，都一个星期了", "aftersale.refund_status", "fast_loud"),
    Utterance("尺码小了能换大一号吗", "aftersale.exchange", "normal"),
    Utterance("收到的杯子碎了", "aftersale.damage", "loud"),
    Utterance("衣服上有个洞，质量太差了", "aftersale.damage", "fast"),
    Utterance("能开发票吗", "invoice", "normal"),
    Utterance("我要开增值税专用发票", "invoice", "slow"),
    Utterance("我要投诉", "complaint", "loud"),
    Utterance("再不处理我就打12315投诉你们", "complaint", "fast_loud"),
    Utterance("转人工", "human_agent", "normal"),
    Utterance("我要找人工客服", "human_agent", "loud"),
    Utterance("别让机器人跟我说话，叫个真人来", "human_agent", "fast_loud"),
    Utterance("你好，请问是客服吗", "greeting", "normal"),
    Utterance("喂，你好，在吗", "greeting", "slow"),
    Utterance("好的，谢谢，再见", "goodbye", "normal"),
    Utterance("没有别的问题了，拜拜", "goodbye", "fast"),
    Utterance("对，是的", "affirm", "normal"),
    Utterance("好的没问题", "affirm", "normal"),
    Utterance("不是，不对", "deny", "normal"),
    Utterance("不用了", "deny", "slow"),
    Utterance("你们店在哪个城市", "other", "normal"),
    Utterance("我的手机号是13800138000", "other", "fast"),
)


def main() -> int:
    try:
        version = _espeak_version()
        entries = [_render(number, utt) for number, utt in enumerate(UTTERANCES, start=1)]
    except IvrError as err:
        print(f"generate.py: {err}", file=sys.stderr)
        return 2
    _remove_old_fixtures(keep={str(e["wav"]) for e in entries} | {str(e["sidecar"]) for e in entries})
    manifest = {"format": "wav/g711-ulaw/8000 Hz/mono", "espeak_ng": version, "fixtures": entries}
    _write_json(HERE / "manifest.json", manifest)
    total = sum(float(e["duration"]) for e in entries)
    print(f"wrote {len(entries)} fixtures ({total:.1f} s of audio) to {HERE}")
    return 0


def _render(number: int, utt: Utterance) -> dict[str, str | int | float]:
    rate_wpm, amplitude = STYLES[utt.style]
    synth = Synthesizer(EspeakVoice(VOICES[number % len(VOICES)], rate_wpm, amplitude=amplitude, pitch=50))
    frame = to_rate(synth.synthesize(utt.text), RATE)
    stem = f"{number:02d}_{utt.intent.replace('.', '_')}_{utt.style}"
    write_ulaw_wav(HERE / f"{stem}.wav", pcm16_to_ulaw(frame.pcm), RATE)
    sidecar: dict[str, str | int | float] = {
        "text": utt.text,
        "intent": utt.intent,
        "rate_wpm": rate_wpm,
        "amplitude": amplitude,
        "style": utt.style,
        "voice": synth.voice,
        "spoken": speakable(utt.text),
    }
    _write_json(HERE / f"{stem}.json", sidecar)
    return {"wav": f"{stem}.wav", "sidecar": f"{stem}.json", **sidecar, "duration": round(frame.duration, 3)}


def _espeak_version() -> str:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise ModelMissingError("espeak-ng is not installed: apt-get install espeak-ng")
    out = subprocess.run([espeak, "--version"], capture_output=True, text=True, timeout=60).stdout
    return out.split("Data at")[0].strip()


def _remove_old_fixtures(keep: set[str]) -> None:
    for path in HERE.glob("[0-9][0-9]_*"):
        if path.suffix in (".wav", ".json") and path.name not in keep:
            path.unlink()


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
