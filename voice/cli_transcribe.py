"""``ivr transcribe FILE.wav [--engine auto|vosk|whisper] [--rate auto|8000|16000] [--json]``.

Hear a recording the way a call hears it (VAD → ASR → prosody, ``voice.speech.transcribe``) and
print each utterance with its times, text, confidence and prosody. Any WAV ``voice.wav`` reads
(mono or stereo, any rate, PCM/float/G.711). ``--rate auto`` runs at 16 kHz when the file has
it, else 8 kHz; ``--rate 8000`` hears it through telephone bandwidth.

Bad audio is one line on stderr and exit 2 (``AudioFormatError``); a recording with no speech in
it is an empty list, exit 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import AudioFormatError
from core.settings import ASR_ENGINES, Settings
from core.types import AudioFrame, Utterance
from voice.wav import read_wav

_CLIPPED_SHARE = 0.25  # a recording with more of its samples at full scale than this is not speech
_FULL_SCALE = 32767


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("transcribe", help="recognise the caller utterances in a WAV file")
    parser.add_argument("file", type=Path, metavar="FILE.wav", help="any WAV: mono or stereo, any sample rate")
    parser.add_argument(
        "--engine", choices=ASR_ENGINES, help="speech engine (default: IVR_ASR_ENGINE, which defaults to auto)"
    )
    parser.add_argument(
        "--rate",
        choices=("auto", "8000", "16000"),
        default="auto",
        help="rate to recognise at: auto = 16 kHz when the file has it, else 8 kHz; 8000 = telephone band",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    parser.set_defaults(func=transcribe_command)


def transcribe_command(args: argparse.Namespace, settings: Settings) -> int:
    """Transcribe ``args.file`` and print the utterances; bad audio raises ``AudioFormatError``."""
    if args.engine:
        settings = dataclasses.replace(settings, asr_engine=args.engine)
    frame = read_wav(args.file)
    check_audio(frame, str(args.file))
    from asr.engine import create_engine  # vosk, faster-whisper, librosa: loaded only for this command
    from voice.speech import transcribe

    engine = create_engine(settings)
    rate = None if args.rate == "auto" else int(args.rate)
    utterances = transcribe(engine, frame, rate=rate)
    if args.json:
        print(json.dumps(as_json(str(args.file), engine.name, utterances), ensure_ascii=False, indent=2))
    else:
        _print_lines(args.file, frame, utterances)
    return 0


def check_audio(frame: AudioFrame, name: str) -> None:
    """Refuse audio no recogniser can make sense of: no samples at all, or mostly clipped."""
    if frame.samples == 0:
        raise AudioFormatError(f"{name} holds no audio (0 samples)")
    x = np.frombuffer(frame.pcm, dtype="<i2")
    clipped = float(np.mean(np.abs(x.astype(np.int32)) >= _FULL_SCALE))
    if clipped > _CLIPPED_SHARE:
        raise AudioFormatError(f"{name} is {clipped:.0%} clipped (samples at full scale): not usable speech")


def as_json(file: str, engine: str, utterances: list[Utterance]) -> dict[str, Any]:
    """The ``--json`` document: ``{"file", "engine", "utterances": [...]}``."""
    return {"file": file, "engine": engine, "utterances": [_utterance_json(u) for u in utterances]}


def _utterance_json(u: Utterance) -> dict[str, Any]:
    return {
        "start": round(u.start, 3),
        "end": round(u.end, 3),
        "text": u.text,
        "confidence": round(u.confidence, 3),
        "words": [
            {"text": w.text, "start": round(w.start, 3), "end": round(w.end, 3), "confidence": round(w.confidence, 3)}
            for w in u.words
        ],
        "prosody": None if u.prosody is None else {k: round(v, 3) for k, v in dataclasses.asdict(u.prosody).items()},
    }


def _print_lines(file: Path, frame: AudioFrame, utterances: list[Utterance]) -> None:
    print(f"{file}: {frame.duration:.2f} s, {len(utterances)} utterance(s)")
    for u in utterances:
        print(f"{u.start:7.2f} – {u.end:7.2f}  {u.text}")
        line = f"                   confidence {u.confidence:.2f}"
        if u.prosody is not None:
            p = u.prosody
            line += (
                f" · {p.speech_rate:.1f} syl/s · f0 {p.f0_mean:.0f} Hz · {p.energy_db:.1f} dBFS"
                f" · pauses {p.pause_ratio:.0%} · vs before: rate ×{p.rel_rate:.2f},"
                f" f0 ×{p.rel_f0:.2f}, {p.rel_energy_db:+.1f} dB"
            )
        print(line)
