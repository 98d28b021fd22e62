"""``ivr say "文本" -o out.wav [--telephone]``: hear what the hotline's TTS makes of a text."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.settings import Settings
from voice import voices
from voice.tts import TELEPHONE_RATE, Synthesizer
from voice.wav import write_ulaw_wav, write_wav


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("say", help="speak a text with the hotline's TTS into a WAV file")
    parser.add_argument("text", help="what to say, e.g. 您的订单已发货，实付32.8元。")
    parser.add_argument("-o", "--output", type=Path, required=True, help="WAV file to write")
    parser.add_argument(
        "--telephone",
        action="store_true",
        help="write 8 kHz μ-law in 20 ms frames, exactly what a caller hears (default: PCM16 at the engine rate)",
    )
    parser.set_defaults(func=say)


def say(args: argparse.Namespace, settings: Settings) -> int:
    """Synthesise ``args.text`` with the configured voice and rate and write it to ``args.output``."""
    synth = voices.synthesizer(settings)
    try:
        seconds = _write(synth, args.text, args.output, telephone=args.telephone)
    except OSError as err:
        print(f"ivr: cannot write {args.output}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({seconds:.2f} s, voice {synth.voice})")
    return 0


def _write(synth: Synthesizer, text: str, path: Path, *, telephone: bool) -> float:
    """Write the speech for ``text`` to ``path``; returns its duration in seconds."""
    if telephone:
        ulaw = b"".join(synth.telephone_frames(text))
        write_ulaw_wav(path, ulaw, TELEPHONE_RATE)
        return len(ulaw) / TELEPHONE_RATE
    frame = synth.synthesize(text)
    write_wav(path, frame)
    return frame.duration
