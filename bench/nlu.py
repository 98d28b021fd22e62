"""Benchmark the NLU on held-out data: intents, multi-need turns, emotion, latency.

Data (never trained on): ``dialog/data/intents.tsv`` rows with ``split=test``,
``dialog/data/multi_intent_test.tsv`` (turns with several needs and their gold intent sets),
``dialog/data/emotion_test.tsv`` (turns labelled neutral/anxious/angry, some with synthetic prosody).
Prints tables and writes ``bench/results/nlu.json``. Run: ``.venv/bin/python bench/nlu.py``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.types import EmotionLabel, Prosody  # noqa: E402
from dialog.nlu import Understander  # noqa: E402
from dialog.normalize import DATA_DIR  # noqa: E402
from dialog.train import INTENTS, load_examples  # noqa: E402
from dialog.vocabulary import Vocabulary  # noqa: E402

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=8)))
RESULTS = ROOT / "bench" / "results" / "nlu.json"
LABELS = [label.value for label in EmotionLabel]


def read_tsv(name: str) -> list[list[str]]:
    lines = (DATA_DIR / name).read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines if line.strip() and not line.startswith("#")]


def prosody_from(cell: str) -> Prosody | None:
    if not cell.strip():
        return None
    rate, f0, energy = (float(x) for x in cell.split(","))
    return Prosody(4.0 * rate, 180.0 * f0, 25.0, -25.0 + energy, 0.1, 2.0, rel_rate=rate, rel_f0=f0,
                   rel_energy_db=energy)


def per_intent(gold: list[str], predicted: list[str]) -> dict[str, dict[str, float]]:
    table = {}
    for name in INTENTS:
        tp = sum(g == p == name for g, p in zip(gold, predicted, strict=True))
        fp = sum(p == name != g for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == name != p for g, p in zip(gold, predicted, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        table[name] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return table


def bench_intents(nlu: Understander, latencies: list[float]) -> dict[str, object]:
    test = load_examples("test")
    gold = [e.intent for e in test]
    predicted: list[str] = []
    errors: list[dict[str, object]] = []
    for example in test:
        started = time.perf_counter()
        u = nlu.understand(example.text, NOW)
        latencies.append((time.perf_counter() - started) * 1000)
        predicted.append(u.intents[0].name)
        if predicted[-1] != example.intent:
            errors.append({"text": example.text, "gold": example.intent, "got": [i.name for i in u.intents]})
    table = per_intent(gold, predicted)
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
    macro_f1 = statistics.mean(row["f1"] for row in table.values())
    return {"n": len(test), "accuracy": accuracy, "macro_f1": macro_f1, "per_intent": table, "errors": errors}


def bench_multi(nlu: Understander, latencies: list[float]) -> dict[str, object]:
    rows = read_tsv("multi_intent_test.tsv")
    found = wanted = extra = exact = main_ok = 0
    misses: list[dict[str, object]] = []
    for text, gold_cell in rows:
        gold = gold_cell.split("|")
        started = time.perf_counter()
        u = nlu.understand(text, NOW)
        latencies.append((time.perf_counter() - started) * 1000)
        got = [i.name for i in u.intents]
        found += len(set(got) & set(gold))
        wanted += len(gold)
        extra += len(set(got) - set(gold))
        exact += set(got) == set(gold)
        main_ok += got[0] in gold
        if set(got) != set(gold):
            misses.append({"text": text, "gold": gold, "got": got})
    predicted_total = found + extra
    return {"n": len(rows), "recall": found / wanted, "precision": found / predicted_total if predicted_total else 0.0,
            "exact_set": exact / len(rows), "main_in_gold": main_ok / len(rows), "misses": misses}


def bench_emotion(nlu: Understander, latencies: list[float]) -> dict[str, object]:
    rows = read_tsv("emotion_test.tsv")
    confusion: Counter[tuple[str, str]] = Counter()
    wrong: list[dict[str, object]] = []
    for row in rows:
        text, gold = row[0], row[1]
        prosody = prosody_from(row[2]) if len(row) > 2 else None
        started = time.perf_counter()
        u = nlu.understand(text, NOW, prosody)
        latencies.append((time.perf_counter() - started) * 1000)
        got = u.emotion.label.value
        confusion[(gold, got)] += 1
        if got != gold:
            wrong.append({"text": text, "gold": gold, "got": got, "cues": list(u.emotion.cues)})
    matrix = {g: {p: confusion[(g, p)] for p in LABELS} for g in LABELS}
    accuracy = sum(confusion[(label, label)] for label in LABELS) / len(rows)
    return {"n": len(rows), "accuracy": accuracy, "confusion": matrix, "errors": wrong}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def print_report(report: dict[str, object]) -> None:
    intents, multi, emotion, latency = (report[k] for k in ("intents", "multi_intent", "emotion", "latency_ms"))
    assert isinstance(intents, dict) and isinstance(multi, dict) and isinstance(emotion, dict)
    assert isinstance(latency, dict)
    print(f"first use (train + load): {report['first_use_s']:.2f} s")
    print(f"\nintents, held-out split: n={intents['n']}  accuracy (main intent) {intents['accuracy']:.3f}"
          f"  macro-F1 {intents['macro_f1']:.3f}")
    print(f"{'intent':<26}{'P':>7}{'R':>7}{'F1':>7}{'n':>5}")
    for name, row in sorted(intents["per_intent"].items(), key=lambda kv: kv[1]["f1"]):
        print(f"{name:<26}{row['precision']:>7.2f}{row['recall']:>7.2f}{row['f1']:>7.2f}{row['support']:>5}")
    print(f"\nmulti-need turns: n={multi['n']}  recall {multi['recall']:.3f}  precision {multi['precision']:.3f}"
          f"  exact set {multi['exact_set']:.3f}  main need in gold {multi['main_in_gold']:.3f}")
    print(f"\nemotion: n={emotion['n']}  accuracy {emotion['accuracy']:.3f}   rows gold, columns predicted")
    print(f"{'':<10}" + "".join(f"{label:>9}" for label in LABELS))
    for gold, row in emotion["confusion"].items():
        print(f"{gold:<10}" + "".join(f"{row[p]:>9}" for p in LABELS))
    print(f"\nlatency per utterance over {latency['n']} turns: p50 {latency['p50']:.2f} ms  p95 {latency['p95']:.2f} ms"
          f"  p99 {latency['p99']:.2f} ms  max {latency['max']:.2f} ms")


def main() -> int:
    started = time.perf_counter()
    nlu = Understander(Vocabulary.empty())
    nlu.understand("热身", NOW)
    first_use = time.perf_counter() - started
    latencies: list[float] = []
    report: dict[str, object] = {
        "first_use_s": first_use,
        "intents": bench_intents(nlu, latencies),
        "multi_intent": bench_multi(nlu, latencies),
        "emotion": bench_emotion(nlu, latencies),
    }
    report["latency_ms"] = {"n": len(latencies), "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                            "p99": percentile(latencies, 99), "max": max(latencies)}
    print_report(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
