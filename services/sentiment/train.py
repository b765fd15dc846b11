"""Train the sentiment model on the committed labelled set and write ``model.npz``.

``python -m services.sentiment.train`` fits on the training split only and prints
precision, recall and F1 for the negative class on the held-out split, for the linear
stage, the embedding stage and the cascade the service runs."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from services.sentiment import dataset
from services.sentiment.classifier import (
    MODEL_FILE,
    TOPICS,
    EmbeddingStage,
    SentimentModel,
    ngrams,
    normalise,
    sigmoid,
    softmax,
)

UNCERTAIN_BAND = (0.3, 0.7)


def _adam(grad_of: Any, params: list[np.ndarray], *, steps: int, rate: float) -> None:
    moments = [np.zeros_like(p) for p in params]
    squares = [np.zeros_like(p) for p in params]
    for step in range(1, steps + 1):
        for param, grad, m, v in zip(params, grad_of(), moments, squares, strict=True):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad * grad
            param -= rate * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)


def fit_linear(
    texts: list[str], labels: np.ndarray, topics: np.ndarray, *, l2: float
) -> dict[str, np.ndarray]:
    """Logistic regression (negative or not) and softmax regression (topic) over the
    same sparse n-gram features."""
    grams = [ngrams(normalise(text)) for text in texts]
    vocabulary = sorted(set().union(*grams))
    index = {gram: i for i, gram in enumerate(vocabulary)}
    rows = np.concatenate([np.full(len(g), r) for r, g in enumerate(grams)])
    cols = np.concatenate([np.array([index[x] for x in g]) for g in grams])
    vals = np.concatenate([np.full(len(g), 1 / max(1, len(g)) ** 0.5) for g in grams])
    n, size = len(texts), len(vocabulary)
    w = np.zeros(size)
    b = np.zeros(1)

    def negative_grads() -> list[np.ndarray]:
        logits = np.bincount(rows, weights=vals * w[cols], minlength=n) + b[0]
        residual = (sigmoid(logits) - labels) / n
        grad_w = np.bincount(cols, weights=vals * residual[rows], minlength=size) + l2 * w
        return [grad_w, np.array([residual.sum()])]

    _adam(negative_grads, [w, b], steps=600, rate=0.05)

    onehot = np.eye(len(TOPICS))[topics]
    tw = np.zeros((size, len(TOPICS)))
    tb = np.zeros(len(TOPICS))

    def topic_grads() -> list[np.ndarray]:
        logits = np.zeros((n, len(TOPICS)))
        np.add.at(logits, rows, vals[:, None] * tw[cols])
        residual = (softmax(logits + tb) - onehot) / n
        grad = np.zeros_like(tw)
        np.add.at(grad, cols, vals[:, None] * residual[rows])
        return [grad + l2 * tw, residual.sum(axis=0)]

    _adam(topic_grads, [tw, tb], steps=400, rate=0.05)
    return {
        "vocabulary": np.array(vocabulary),
        "negative_weights": w.astype(np.float32),
        "negative_bias": np.array(b[0], dtype=np.float32),
        "topic_weights": tw.astype(np.float16),
        "topic_bias": tb.astype(np.float32),
        "band": np.array(UNCERTAIN_BAND, dtype=np.float32),
    }


def fit_embedding_head(
    vectors: np.ndarray, labels: np.ndarray, *, l2: float
) -> tuple[np.ndarray, float]:
    """Logistic regression over sentence embeddings."""
    w = np.zeros(vectors.shape[1])
    b = np.zeros(1)
    n = len(labels)

    def grads() -> list[np.ndarray]:
        residual = (sigmoid(vectors @ w + b[0]) - labels) / n
        return [vectors.T @ residual + l2 * w, np.array([residual.sum()])]

    _adam(grads, [w, b], steps=800, rate=0.05)
    return w.astype(np.float32), float(b[0])


def negative_class_report(predicted: list[bool], truth: list[bool]) -> dict[str, float]:
    tp = sum(p and t for p, t in zip(predicted, truth, strict=True))
    fp = sum(p and not t for p, t in zip(predicted, truth, strict=True))
    fn = sum(t and not p for p, t in zip(predicted, truth, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
    return {
        "precision": round(precision, 3),
        "recall": round(recall, 3),
        "f1": round(f1, 3),
        "accuracy": round(correct / len(truth), 3),
        "n": len(truth),
    }


def evaluate(model: SentimentModel, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Held-out figures for each stage, the cascade, subsets and topics."""
    texts = [item["text"] for item in items]
    truth = [bool(item["negative"]) for item in items]
    linear = [model.linear(text) for text in texts]
    report: dict[str, Any] = {
        "linear": negative_class_report([a.score >= 0.5 for a in linear], truth)
    }
    if model.embedding is not None:
        embedded = model.embedding.scores(texts)
        report["embedding"] = negative_class_report([s >= 0.5 for s in embedded], truth)
    started = time.perf_counter()
    cascade = model.analyse_many(texts)
    report["cascade_items_per_second"] = round(len(texts) / (time.perf_counter() - started))
    predicted = [a.score >= 0.5 for a in cascade]
    report["cascade"] = negative_class_report(predicted, truth)
    report["routed_to_embedding"] = sum(a.stage == "embedding" for a in cascade)
    for key, value in (("origin", "handwritten"), ("script", "traditional")):
        chosen = [i for i, item in enumerate(items) if item[key] == value]
        report[f"cascade_{value}"] = negative_class_report(
            [predicted[i] for i in chosen], [truth[i] for i in chosen]
        )
    topics = [max(a.topic_scores, key=a.topic_scores.__getitem__) for a in cascade]
    report["topic_accuracy"] = round(
        sum(t == item["topic"] for t, item in zip(topics, items, strict=True)) / len(items), 3
    )
    return report


def train(
    *, out: Path = MODEL_FILE, l2: float = 1e-4, use_embeddings: bool = True
) -> dict[str, Any]:
    """Fit on the training split, save the weights, report on the held-out split."""
    items = dataset.load()
    training = [item for item in items if item["split"] == "train"]
    held_out = [item for item in items if item["split"] == "test"]
    texts = [item["text"] for item in training]
    labels = np.array([float(item["negative"]) for item in training])
    topics = np.array([TOPICS.index(item["topic"]) for item in training])
    weights = fit_linear(texts, labels, topics, l2=l2)
    if use_embeddings:
        stage = EmbeddingStage(np.zeros(1, dtype=np.float32), 0.0)
        vectors = stage.embed(texts).astype(np.float64)
        head, bias = fit_embedding_head(vectors, labels, l2=l2 * 10)
        weights["embedding_weights"] = head
        weights["embedding_bias"] = np.array(bias, dtype=np.float32)
    np.savez_compressed(out, **weights)
    model = SentimentModel.load(out, use_embeddings=use_embeddings)
    return {
        "train_items": len(training),
        "held_out_items": len(held_out),
        "vocabulary": len(weights["vocabulary"]),
        "model_bytes": out.stat().st_size,
        "held_out": evaluate(model, held_out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    parser.add_argument("--l2", type=float, default=1e-4)
    parser.add_argument("--linear-only", action="store_true")
    args = parser.parse_args()
    report = train(out=args.out, l2=args.l2, use_embeddings=not args.linear_only)
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
