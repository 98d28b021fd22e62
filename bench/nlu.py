"""Benchmark the NLU on our own held-out split and on real customer turns, side by side.

Own split (never trained on): ``dialog/data/intents.tsv`` rows with ``split=test``,
``dialog/data/multi_intent_test.tsv`` (turns with several needs and their gold intent sets),
``dialog/data/emotion_test.tsv`` (turns labelled neutral/anxious/angry, some with synthetic prosody),
``dialog/data/context_test.tsv`` (short mid-call turns with the bot's previous utterance and the gold intent).

Real dev set: ``../shared/data/real_turns_dev.tsv`` (``SHARED_DIR`` overrides ``../shared``), 401 real
JD.com customer turns labelled with the taxonomy (see its README). It is for measurement only: nothing
in it is trained on, and no line of it is written to the results, only figures. Our finer intents are
scored as the dev set's label for them (``dialog.intents.DEV_LABEL``: 价保 questions are
promotion.*, a delivery appointment or a courier contact is ``other`` there). Mid-dialogue rows pass
their ``context`` (the previous agent turn) as the understander's ``context``, as a live call does with
the bot's previous utterance; first turns and mid-dialogue turns are also scored apart.

Prints a table and writes ``bench/results/nlu.json``. Run: ``.venv/bin/python bench/nlu.py``.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.types import EmotionLabel, Prosody, Understanding  # noqa: E402
from dialog.intents import DEV_LABEL, INTENTS  # noqa: E402
from dialog.nlu import Understander  # noqa: E402
from dialog.normalize import DATA_DIR  # noqa: E402
from dialog.train import load_examples  # noqa: E402
from dialog.vocabulary import Vocabulary  # noqa: E402

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=8)))
RESULTS = ROOT / "bench" / "results" / "nlu.json"
SHARED = Path(os.environ.get("SHARED_DIR") or ROOT.parent / "shared")
REAL_DEV = SHARED / "data" / "real_turns_dev.tsv"
LABELS = [label.value for label in EmotionLabel]
DEV_INTENTS = tuple(dict.fromkeys(DEV_LABEL.get(name, name) for name in INTENTS))


@dataclass(frozen=True, slots=True)
class Row:
    text: str
    intents: tuple[str, ...] = ()  # gold, main first; empty when the row is not labelled for intents
    emotion: str = ""  # gold; empty when not labelled
    prosody: Prosody | None = None
    context: str = ""  # what the bot said just before (mid-dialogue turns); empty for a first turn


@dataclass(frozen=True, slots=True)
class Result:
    row: Row
    intents: tuple[str, ...]
    emotion: str


def read_tsv(name: str) -> list[list[str]]:
    lines = (DATA_DIR / name).read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines if line.strip() and not line.startswith("#")]


def prosody_from(cell: str) -> Prosody | None:
    if not cell.strip():
        return None
    rate, f0, energy = (float(x) for x in cell.split(","))
    return Prosody(
        4.0 * rate, 180.0 * f0, 25.0, -25.0 + energy, 0.1, 2.0, rel_rate=rate, rel_f0=f0, rel_energy_db=energy
    )


def own_rows() -> dict[str, list[Row]]:
    intents = [Row(e.text, (e.intent,)) for e in load_examples("test")]
    multi = [Row(r[0], tuple(r[1].split("|"))) for r in read_tsv("multi_intent_test.tsv")]
    emotion = [
        Row(r[0], emotion=r[1], prosody=prosody_from(r[2]) if len(r) > 2 else None)
        for r in read_tsv("emotion_test.tsv")
    ]
    context = [Row(r[1], (r[2],), context=r[0]) for r in read_tsv("context_test.tsv")]
    return {"intents": intents, "multi": multi, "emotion": emotion, "context": context}


def dev_rows() -> list[Row]:
    with REAL_DEV.open(encoding="utf-8", newline="") as stream:
        return [
            Row(r["text"], tuple(r["intents"].split(",")), r["emotion"], context=r["context"])
            for r in csv.DictReader(stream, delimiter="\t")
        ]


def run(nlu: Understander, rows: Sequence[Row], latencies: list[float], scored: bool) -> list[Result]:
    """Understand every row; ``scored`` maps our finer intents to the dev set's labels."""
    results = []
    for row in rows:
        started = time.perf_counter()
        u: Understanding = nlu.understand(row.text, NOW, row.prosody, context=row.context or None)
        latencies.append((time.perf_counter() - started) * 1000)
        names = [DEV_LABEL.get(i.name, i.name) if scored else i.name for i in u.intents]
        results.append(Result(row, tuple(dict.fromkeys(names)), u.emotion.label.value))
    return results


def per_intent(gold: list[str], predicted: list[str], names: Sequence[str]) -> dict[str, dict[str, float]]:
    table = {}
    for name in names:
        tp = sum(g == p == name for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == name != g for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == name != p for g, p in zip(gold, predicted, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table[name] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return table


def intent_scores(results: Sequence[Result], names: Sequence[str]) -> dict[str, object]:
    gold = [r.row.intents[0] for r in results]
    predicted = [r.intents[0] for r in results]
    table = per_intent(gold, predicted, names)
    present = [row["f1"] for row in table.values() if row["support"]]
    pairs = Counter(f"{g} -> {p}" for g, p in zip(gold, predicted, strict=True) if g != p)
    right = sum(g == p for g, p in zip(gold, predicted, strict=True))
    return {
        "n": len(results),
        "accuracy": right / len(gold),
        "macro_f1": statistics.mean(present),
        "per_intent": table,
        "confusions": dict(pairs.most_common(15)),
    }


def multi_scores(results: Sequence[Result]) -> dict[str, object]:
    found = wanted = extra = exact = 0
    for r in results:
        gold, got = set(r.row.intents), set(r.intents)
        found, wanted, extra, exact = (
            found + len(gold & got),
            wanted + len(gold),
            extra + len(got - gold),
            exact + (gold == got),
        )
    return {
        "n": len(results),
        "recall": found / wanted if wanted else 0.0,
        "precision": found / (found + extra) if found + extra else 0.0,
        "exact_set": exact / len(results) if results else 0.0,
    }


def emotion_scores(results: Sequence[Result]) -> dict[str, object]:
    confusion = Counter((r.row.emotion, r.emotion) for r in results)
    matrix = {g: {p: confusion[(g, p)] for p in LABELS} for g in LABELS}
    angry_tp = confusion[("angry", "angry")]
    said_angry = sum(confusion[(g, "angry")] for g in LABELS)
    were_angry = sum(confusion[("angry", p)] for p in LABELS)
    return {
        "n": len(results),
        "accuracy": sum(confusion[(x, x)] for x in LABELS) / len(results),
        "angry_recall": angry_tp / were_angry if were_angry else 0.0,
        "angry_precision": angry_tp / said_angry if said_angry else 0.0,
        "confusion": matrix,
    }


def latency(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]

    return {"n": len(values), "p50": at(50), "p95": at(95), "p99": at(99), "max": ordered[-1]}


def evaluate_own(nlu: Understander) -> dict[str, object]:
    rows, latencies = own_rows(), []
    intents = run(nlu, rows["intents"], latencies, scored=False)
    multi = run(nlu, rows["multi"], latencies, scored=False)
    emotion = run(nlu, rows["emotion"], latencies, scored=False)
    context = run(nlu, rows["context"], latencies, scored=False)
    errors = [
        {"text": r.row.text, "gold": r.row.intents[0], "got": list(r.intents)}
        for r in intents
        if r.intents[0] != r.row.intents[0]
    ]
    return {
        "intents": {**intent_scores(intents, INTENTS), "errors": errors},
        "multi_intent": multi_scores(multi),
        "emotion": emotion_scores(emotion),
        "mid_dialogue": {"intents": intent_scores(context, INTENTS)},
        "latency_ms": latency(latencies),
    }


def evaluate_dev(nlu: Understander) -> dict[str, object] | None:
    if not REAL_DEV.exists():
        return None
    latencies: list[float] = []
    results = run(nlu, dev_rows(), latencies, scored=True)
    multi = [r for r in results if len(r.row.intents) > 1]
    first = [r for r in results if not r.row.context]
    mid = [r for r in results if r.row.context]
    return {
        "first_turn": {"intents": intent_scores(first, DEV_INTENTS), "emotion": emotion_scores(first)},
        "mid_dialogue": {"intents": intent_scores(mid, DEV_INTENTS), "emotion": emotion_scores(mid)},
        "intents": intent_scores(results, DEV_INTENTS),
        "multi_intent": multi_scores(multi),
        "all_needs": multi_scores(results),
        "emotion": emotion_scores(results),
        "latency_ms": latency(latencies),
    }


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "—"


def _get(report: dict[str, object] | None, *path: str) -> object:
    node: object = report
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


SUMMARY = (
    ("main intent accuracy", ("intents", "accuracy")),
    ("  first turns", ("first_turn", "intents", "accuracy")),
    ("  mid-dialogue (context)", ("mid_dialogue", "intents", "accuracy")),
    ("macro-F1", ("intents", "macro_f1")),
    ("multi-need recall", ("multi_intent", "recall")),
    ("multi-need precision", ("multi_intent", "precision")),
    ("multi-need exact set", ("multi_intent", "exact_set")),
    ("emotion accuracy", ("emotion", "accuracy")),
    ("angry recall", ("emotion", "angry_recall")),
    ("angry precision", ("emotion", "angry_precision")),
    ("  angry recall, first", ("first_turn", "emotion", "angry_recall")),
    ("  angry recall, mid", ("mid_dialogue", "emotion", "angry_recall")),
    ("latency p50 ms", ("latency_ms", "p50")),
    ("latency p95 ms", ("latency_ms", "p95")),
)


def print_report(report: dict[str, object]) -> None:
    own, dev = report["own"], report["real_dev"]
    assert isinstance(own, dict) and (dev is None or isinstance(dev, dict))
    boot = report["startup"]
    assert isinstance(boot, dict)
    print(
        f"one-line ivr understand: cold (trains) {boot['cold_s']:.2f} s, warm (cached model) median "
        f"{boot['warm_median_s']:.2f} s, max {boot['warm_max_s']:.2f} s"
    )
    print(f"\n{'':<24}{'own split':>12}{'real dev':>12}")
    for title, path in SUMMARY:
        print(f"{title:<24}{_fmt(_get(own, *path)):>12}{_fmt(_get(dev, *path)):>12}")
    print(f"\n{'per intent F1':<26}{'own':>7}{'n':>5}{'dev':>7}{'n':>5}")
    own_table = _get(own, "intents", "per_intent")
    dev_table = _get(dev, "intents", "per_intent") or {}
    assert isinstance(own_table, dict) and isinstance(dev_table, dict)
    for name in INTENTS:
        mine, real = own_table.get(name, {}), dev_table.get(name, {})
        print(
            f"{name:<26}{_fmt(mine.get('f1')):>7}{mine.get('support', 0):>5}"
            f"{_fmt(real.get('f1')) if real.get('support') else '—':>7}{real.get('support', 0):>5}"
        )
    for title, part in (("own", own), ("real dev", dev)):
        pairs = _get(part, "intents", "confusions")
        if isinstance(pairs, dict):
            listed = ", ".join(f"{k} {v}" for k, v in pairs.items())
            print(f"\nmost frequent main-intent confusions, {title}: {listed}")
        confusion = _get(part, "emotion", "confusion")
        if isinstance(confusion, dict):
            print(f"\nemotion, {title}: rows gold, columns predicted")
            print(f"{'':<10}" + "".join(f"{label:>9}" for label in LABELS))
            for gold, row in confusion.items():
                print(f"{gold:<10}" + "".join(f"{row[p]:>9}" for p in LABELS))


def one_line_understand(cache: Path) -> float:
    """Seconds for a one-line ``ivr understand`` in a fresh process (the sample shop, models cached in ``cache``)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(ROOT), "IVR_DB_PATH": str(cache / "shop.db")}
    env.pop("IVR_SHOP_FILE", None)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "voice.cli", "understand", "快递到哪了"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return time.perf_counter() - started


def startup(runs: int = 3) -> dict[str, float]:
    """A one-line ``ivr understand``: cold (no cached model: trains) and warm (loads the cached model)."""
    with tempfile.TemporaryDirectory() as tmp:
        cold = one_line_understand(Path(tmp))
        warm = sorted(one_line_understand(Path(tmp)) for _ in range(runs))
    return {"cold_s": cold, "warm_median_s": warm[len(warm) // 2], "warm_max_s": warm[-1]}


def main() -> int:
    started = time.perf_counter()
    nlu = Understander(Vocabulary.empty())
    nlu.understand("热身", NOW)
    first_use = time.perf_counter() - started
    report: dict[str, object] = {
        "first_use_s": first_use,
        "startup": startup(),
        "own": evaluate_own(nlu),
        "real_dev": evaluate_dev(nlu),
    }
    print_report(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
