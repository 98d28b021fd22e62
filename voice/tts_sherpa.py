"""A neural Mandarin voice: Kokoro-82M v1.1-zh run by sherpa-onnx.

Why this voice: its weights are Apache-2.0 (hexgrad/Kokoro-82M-v1.1-zh) and its model card says the
100 Mandarin speakers come from a professional data set LongMaoData granted permissively for it, so
a shop may use it commercially; it has many speakers to choose from and speaks at 24 kHz. MeloTTS
(MIT weights, undisclosed Chinese data) and the AISHELL-3 VITS voice were the runners-up; the Baker
(标贝) voices are non-commercial and out.

Install: ``ivr models download kokoro-zh`` (int8, 141 MB) or ``kokoro-zh-hq`` (fp32, 348 MB), the
archives k2-fsa publishes in sherpa-onnx's ``tts-models`` release, checked against pinned SHA-256
values (``asr/models.py``). ``installed_path`` finds them in ``settings.model_dir``.

sherpa-onnx ends the whole process (``_Exit``), instead of raising, on some malformed inputs: a
``voices.bin`` whose size does not fit the model, a bad line in ``tokens.txt``, missing metadata.
A hotline must not die because a model directory is damaged, so ``kokoro_dir_problems`` reads the
ONNX metadata (the header fields only, without loading the network) and checks those files first;
``SherpaVoice`` refuses a directory with any problem.

Text reaches ``synthesize`` already normalised (numbers written out), so sherpa-onnx's own rule
FSTs (date/number/phone) are not loaded: they would cost time and change nothing. Since
sherpa-onnx 2.0 Kokoro needs no espeak-ng data: Chinese goes through ``lexicon-zh.txt``, English
words through ``lexicon-us-en.txt``; characters in neither are skipped.

One model per process: ``load`` caches the loaded model by directory, and voices with other
speakers or speeds share it. ``generate`` releases the GIL; calls are serialised with a lock because
sherpa-onnx promises nothing about concurrent generation on one model.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from core.errors import ConfigError, ModelMissingError
from voice.tts_engine import SynthesisError, VoiceInfo

VOICE_INFO = VoiceInfo(
    name="kokoro-zh",
    engine="sherpa-onnx (Kokoro-82M v1.1-zh)",
    description="Kokoro-82M v1.1-zh: neural Mandarin, 100 speakers, 24 kHz, on the CPU through sherpa-onnx",
    licence="Apache-2.0 weights (hexgrad/Kokoro-82M-v1.1-zh); Mandarin data granted permissively by LongMaoData",
    commercial=True,
    neural=True,
)
CATALOGUE_NAMES = ("kokoro-zh-hq", "kokoro-zh")  # the order installed_path prefers (hq was a deliberate choice)
DEFAULT_SPEAKER = 3  # zf_001, the first Mandarin female voice (0-2 are English: af_maple, af_sol, bf_vale)
DEFAULT_THREADS = 2
MODEL_FILES = ("model.int8.onnx", "model.onnx")  # kokoro-zh ships the first, kokoro-zh-hq the second
LEXICONS = ("lexicon-zh.txt", "lexicon-us-en.txt")  # the first is required, the second used when present
_REQUIRED = ("tokens.txt", "voices.bin", "lexicon-zh.txt")
_METADATA_FIELD = 14  # ModelProto.metadata_props in onnx.proto
_ASCII_SPACE = re.compile("[ \t\n\v\f\r]+")  # what C++'s ``>>`` splits tokens.txt on (not U+3000, U+00A0 ...)


# ---------------------------------------------------------------------------------------------
# Is it installed, and is the directory usable


def installed_path(model_dir: Path) -> Path | None:
    """The installed Kokoro voice directory under ``model_dir`` (``kokoro-zh-hq`` first), or None."""
    for name in CATALOGUE_NAMES:
        if not kokoro_dir_problems(model_dir / name):
            return model_dir / name
    return None


def why_missing(model_dir: Path) -> str:
    """One line for a user: why no Kokoro voice can be loaded from ``model_dir`` and what to run."""
    for name in CATALOGUE_NAMES:
        path = model_dir / name
        if path.exists():
            problems = kokoro_dir_problems(path)
            if problems:
                return f"{path} is not a usable Kokoro voice ({problems[0]}): run `ivr models download {name} --force`"
    return f"no neural voice is installed in {model_dir}: run `ivr models download kokoro-zh`"


def kokoro_dir_problems(path: Path) -> list[str]:
    """Why ``path`` is not a Kokoro multi-lingual (v1.1) voice directory sherpa-onnx can load safely."""
    if not path.is_dir():
        return [f"{path} is not a directory"]
    model = model_file(path)
    problems = [] if model else [f"{' or '.join(MODEL_FILES)} is missing or empty"]
    problems += [f"{rel} is missing or empty" for rel in _REQUIRED if not _nonempty(path / rel)]
    if model is None or problems:
        return problems
    try:
        meta = onnx_metadata(model)
    except (OSError, ValueError) as err:
        return [f"{model.name} is not an ONNX model ({err})"]
    return _metadata_problems(model.name, meta, path / "voices.bin") or _tokens_problems(path / "tokens.txt")


def model_file(path: Path) -> Path | None:
    return next((path / name for name in MODEL_FILES if _nonempty(path / name)), None)


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _metadata_problems(label: str, meta: Mapping[str, str], voices: Path) -> list[str]:
    """What sherpa-onnx reads from the metadata (and exits on when missing), and voices.bin's size."""
    missing = [key for key in ("sample_rate", "n_speakers", "has_espeak", "style_dim") if key not in meta]
    if meta.get("model_type") != "kokoro" or missing:
        return [f"{label} is not a Kokoro model (metadata model_type={meta.get('model_type')!r}, missing {missing})"]
    try:
        version, speakers = int(meta.get("version", "1")), int(meta["n_speakers"])
        rows, one, dim = (int(x) for x in meta["style_dim"].split(","))
        int(meta["sample_rate"])
    except ValueError:
        return [f"{label} has malformed metadata (style_dim={meta['style_dim']!r})"]
    if version < 2:
        return [f"{label} is Kokoro version {version}, an English-only model; the Mandarin voice is version 2"]
    if one != 1 or speakers < 1 or rows < 3 or dim < 1:
        return [f"{label} has malformed metadata (style_dim={meta['style_dim']!r}, n_speakers={speakers})"]
    expected = speakers * rows * dim * 4
    if voices.stat().st_size != expected:
        return [f"voices.bin has {voices.stat().st_size} bytes, {label} expects {expected} (corrupt or another model)"]
    return []


def _tokens_problems(tokens: Path) -> list[str]:
    """sherpa-onnx exits on a tokens.txt line that is not ``<one character> <id>`` (or ``<id>``: a space)."""
    try:
        lines = tokens.read_text(encoding="utf-8").split("\n")  # as getline: not on U+2028, U+0085 ...
    except (OSError, UnicodeDecodeError) as err:
        return [f"tokens.txt cannot be read ({err})"]
    for number, line in enumerate(lines, 1):
        fields = [field for field in _ASCII_SPACE.split(line) if field]
        if not fields:
            continue
        symbol, token_id = (" ", fields[0]) if len(fields) == 1 else (fields[0], fields[-1])
        if len(fields) > 2 or len(symbol) != 1 or not token_id.isdigit():
            return [f"tokens.txt line {number} is not '<one character> <id>': {line!r}"]
    return []


# ---------------------------------------------------------------------------------------------
# ONNX metadata without loading the model


def onnx_metadata(model: Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file, read from the protobuf's top-level fields.

    The graph (hundreds of MB) is skipped with a seek, so this costs milliseconds; ``onnx`` is not
    needed at run time. Raises ValueError when the file is not a well-formed protobuf message.
    """
    size = model.stat().st_size
    meta: dict[str, str] = {}
    with model.open("rb") as f:
        while f.tell() < size:
            key = _varint(f)
            field, wire = key >> 3, key & 7
            if wire == 0:
                _varint(f)
            elif wire in (1, 5):
                f.seek(8 if wire == 1 else 4, 1)
            elif wire == 2:
                length = _varint(f)
                if field == _METADATA_FIELD:
                    meta.update([_string_pair(f.read(length))])
                else:
                    f.seek(length, 1)
            else:
                raise ValueError(f"unexpected protobuf wire type {wire} at byte {f.tell()}")
        if f.tell() != size:
            raise ValueError(f"a field runs past the end of the file ({size} bytes)")
    return meta


def _varint(f: BinaryIO) -> int:
    value = shift = 0
    while True:
        byte = f.read(1)
        if not byte:
            raise ValueError("the file ends inside a protobuf field")
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("a protobuf varint is too long")


def _string_pair(data: bytes) -> tuple[str, str]:
    """A StringStringEntryProto: field 1 the key, field 2 the value."""
    pair = {1: "", 2: ""}
    at = 0
    while at < len(data):
        key, at = _varint_at(data, at)
        length, at = _varint_at(data, at)
        if key & 7 != 2 or at + length > len(data):
            raise ValueError("malformed metadata entry")
        pair[key >> 3] = data[at : at + length].decode("utf-8", errors="replace")
        at += length
    return pair[1], pair[2]


def _varint_at(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while at < len(data):
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
    raise ValueError("malformed metadata entry")


# ---------------------------------------------------------------------------------------------
# Loading and speaking


@dataclass(slots=True)
class _Model:
    """One loaded sherpa-onnx model, shared by every voice made from its directory."""

    tts: Any  # sherpa_onnx.OfflineTts
    sample_rate: int
    speakers: int
    lock: threading.Lock


_models: dict[tuple[Path, int], _Model] = {}
_models_lock = threading.Lock()


class SherpaVoice:
    """The Kokoro voice as a ``VoiceEngine``: one speaker at one speed over the process's shared model."""

    def __init__(
        self, path: Path, speaker: int = DEFAULT_SPEAKER, speed: float = 1.0, threads: int = DEFAULT_THREADS
    ) -> None:
        if not speed > 0:
            raise ConfigError(f"Kokoro speed must be above 0, got {speed}")
        self._model = _shared_model(path, threads)
        if not 0 <= speaker < self._model.speakers:
            raise ConfigError(f"Kokoro speaker must be 0..{self._model.speakers - 1}, got {speaker}")
        self.info = VOICE_INFO
        self.sample_rate = self._model.sample_rate
        self.path, self.speaker, self.speed = path, speaker, speed

    def synthesize(self, text: str) -> np.ndarray:
        """float32 mono in [-1, 1] at ``sample_rate``; empty when ``text`` has nothing the voice can say."""
        if not text.strip():
            return np.zeros(0, dtype=np.float32)
        try:
            with self._model.lock:
                audio = self._model.tts.generate(text, sid=self.speaker, speed=self.speed)
            samples = np.asarray(audio.samples, dtype=np.float32).reshape(-1)
        except (RuntimeError, ValueError, TypeError) as err:
            raise SynthesisError(f"sherpa-onnx failed on {len(text)} characters: {err}") from None
        if not np.isfinite(samples).all():
            raise SynthesisError(f"sherpa-onnx returned non-finite samples for {len(text)} characters")
        return np.clip(samples, -1.0, 1.0)


def load(path: Path, speaker: int = DEFAULT_SPEAKER, speed: float = 1.0, threads: int = DEFAULT_THREADS) -> SherpaVoice:
    """The Kokoro voice in ``path``; the model is loaded once per directory and process."""
    return SherpaVoice(path, speaker, speed, threads)


def _shared_model(path: Path, threads: int) -> _Model:
    key = (path.resolve(), threads)
    with _models_lock:  # held while loading: two calls starting together load it once
        model = _models.get(key)
        if model is None:
            model = _models[key] = _load_model(key[0], threads)
        return model


def _load_model(path: Path, threads: int) -> _Model:
    problems = kokoro_dir_problems(path)
    if problems:
        raise ModelMissingError(
            f"{path} is not a usable Kokoro voice ({problems[0]}): run `ivr models download kokoro-zh`"
        )
    sherpa_onnx = _sherpa()
    config = _config(sherpa_onnx, path, threads)
    if not config.validate():
        raise ModelMissingError(f"sherpa-onnx rejects the Kokoro voice in {path} (see its log above)")
    try:
        tts = sherpa_onnx.OfflineTts(config)
    except (RuntimeError, ValueError) as err:
        raise ModelMissingError(f"cannot load the Kokoro voice in {path}: {err}") from None
    return _Model(tts, int(tts.sample_rate), int(tts.num_speakers), threading.Lock())


def _sherpa() -> Any:
    import sherpa_onnx  # a dependency; imported only when the voice is loaded

    return sherpa_onnx


def _config(sherpa_onnx: Any, path: Path, threads: int) -> Any:
    model = model_file(path)
    lexicons = ",".join(str(path / name) for name in LEXICONS if _nonempty(path / name))
    kokoro = sherpa_onnx.OfflineTtsKokoroModelConfig(
        model=str(model), voices=str(path / "voices.bin"), tokens=str(path / "tokens.txt"), lexicon=lexicons
    )
    return sherpa_onnx.OfflineTtsConfig(
        model=sherpa_onnx.OfflineTtsModelConfig(kokoro=kokoro, num_threads=threads, provider="cpu")
    )
