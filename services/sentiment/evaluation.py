"""How the sentiment model is judged: precision, recall and F1 of the negative class
overall, per register and per script, the false-positive rate on parents' praise, the
lexicon baselines (``pysenti``, SnowNLP) side by side, and the targets the issue sets."""

from __future__ import annotations

import time
from typing import Any

from services.sentiment import dataset
from services.sentiment.classifier import SentimentModel, normalise
from shared.evaluation import binary_scores

TARGETS = {"precision": 0.92, "recall": 0.95, "parent_praise_fpr": 0.05}


def negative_class_report(predicted: list[bool], truth: list[bool]) -> dict[str, float]:
    scores = binary_scores(predicted, truth)
    correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
    return {
        "precision": round(scores.precision, 3),
        "recall": round(scores.recall, 3),
        "f1": round(scores.f1, 3),
        "accuracy": round(correct / len(truth), 3) if truth else 0.0,
        "n": len(truth),
        "negatives": sum(truth),
        "false_positives": scores.false_positives,
        "missed": scores.false_negatives,
    }


def parent_praise(item: dict[str, Any]) -> bool:
    """Parents' praise, thanks and questions: the texts the old model flagged."""
    return item["register"] == "parent" and not item["negative"]


def breakdown(items: list[dict[str, Any]], predicted: list[bool]) -> dict[str, Any]:
    """Overall, per register, per script, and the parent-praise false-positive rate."""
    truth = [bool(item["negative"]) for item in items]
    predicted = [bool(p) for p in predicted]

    def subset(field: str, value: str) -> dict[str, float]:
        chosen = [i for i, item in enumerate(items) if item[field] == value]
        return negative_class_report([predicted[i] for i in chosen], [truth[i] for i in chosen])

    praise = [i for i, item in enumerate(items) if parent_praise(item)]
    flagged = sum(predicted[i] for i in praise)
    return {
        "overall": negative_class_report(predicted, truth),
        "registers": {register: subset("register", register) for register in dataset.REGISTERS},
        "scripts": {script: subset("script", script) for script in ("simplified", "traditional")},
        "parent_praise_fpr": round(flagged / len(praise), 3) if praise else 0.0,
        "parent_praise_items": len(praise),
    }


def baselines(items: list[dict[str, Any]]) -> dict[str, list[bool]]:
    """``pysenti`` (negative when its score is below 0) and SnowNLP (negative when its
    positive probability is below 0.5), each given the Simplified text (both were built
    on Simplified Chinese), when installed (``pip install -e .[bench]``)."""
    texts = [normalise(item["text"]) for item in items]
    found: dict[str, list[bool]] = {}
    try:
        import logging

        import jieba
        import pysenti

        jieba.setLogLevel(logging.WARNING)
        found["pysenti"] = [pysenti.classify(text)["score"] < 0 for text in texts]
    except ImportError:
        pass
    try:
        from snownlp import SnowNLP

        found["snownlp"] = [SnowNLP(text).sentiments < 0.5 for text in texts]
    except ImportError:
        pass
    return found


def evaluate(model: SentimentModel, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Held-out figures for the linear stage (what intake runs), the embedding stage and
    the cascade (screening and ``/classify``) when loaded, and topic accuracy."""
    texts = [item["text"] for item in items]
    started = time.perf_counter()
    linear = model.linear_many(texts)
    seconds = time.perf_counter() - started
    report: dict[str, Any] = {
        "linear": breakdown(items, [a.score >= 0.5 for a in linear]),
        "linear_items_per_second": round(len(texts) / seconds),
    }
    if model.embedding is not None:
        embedded = model.embedding.scores(texts)
        report["embedding"] = breakdown(items, [bool(s >= 0.5) for s in embedded])
        cascade = model.analyse_many(texts)
        report["cascade"] = breakdown(items, [a.score >= 0.5 for a in cascade])
        report["routed_to_embedding"] = sum(a.stage == "embedding" for a in cascade)
    topics = [max(a.topic_scores, key=a.topic_scores.__getitem__) for a in linear]
    report["topic_accuracy"] = round(
        sum(t == item["topic"] for t, item in zip(topics, items, strict=True)) / len(items), 3
    )
    return report


def meets_targets(figures: dict[str, Any]) -> list[str]:
    """What misses a target, in words (empty when all are met)."""
    misses = []
    rows = {"overall": figures["overall"], **figures["registers"]}
    for name, row in rows.items():
        for measure in ("precision", "recall"):
            if row[measure] < TARGETS[measure]:
                misses.append(f"{name} {measure} {row[measure]} < {TARGETS[measure]}")
    if figures["parent_praise_fpr"] > TARGETS["parent_praise_fpr"]:
        misses.append(f"parent praise FPR {figures['parent_praise_fpr']} > 0.05")
    return misses


def table(report: dict[str, Any]) -> str:
    """The per-register held-out table (Markdown): the linear stage (what intake runs),
    the cascade (screening, ``/classify``) and the baselines, precision / recall."""
    held = report["held_out"]
    ours = held["linear"]
    others = {"cascade": held["cascade"]} if "cascade" in held else {}
    others |= report.get("baselines", {})
    names = ["linear (intake)", *others]
    header = "| register | items (neg.) | " + " | ".join(f"{n} P / R" for n in names) + " |"
    lines = [header, "|" + " --- |" * (2 + len(names))]
    rows = [("overall", "overall"), *((r, r) for r in dataset.REGISTERS)]
    rows += [("traditional script", "traditional")]
    for label, key in rows:
        if key == "overall":
            figures = [ours["overall"], *(o["overall"] for o in others.values())]
        elif key == "traditional":
            figures = [ours["scripts"][key], *(o["scripts"][key] for o in others.values())]
        else:
            figures = [ours["registers"][key], *(o["registers"][key] for o in others.values())]
        cells = " | ".join(f"{f['precision']:.2f} / {f['recall']:.2f}" for f in figures)
        lines.append(f"| {label} | {figures[0]['n']} ({figures[0]['negatives']}) | {cells} |")
    fprs = " | ".join(f"{f['parent_praise_fpr']:.3f}" for f in [ours, *others.values()])
    lines.append(f"| parent praise FPR ({ours['parent_praise_items']} items) | | {fprs} |")
    return "\n".join(lines)
