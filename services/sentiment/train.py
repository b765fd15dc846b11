"""Train the sentiment model on the labelled set and write ``model.npz`` and the report.

``python -m services.sentiment.train`` fits on the training split only (hand-written and
composed items, plus officers' corrections), chooses the decision threshold by 5-fold
cross-validation on the training split (never on the held-out part), then judges the
model on the held-out part, written apart from the training items: precision, recall and
F1 of the negative class overall, per register and per script, the false-positive rate on
parents' praise and questions, for the linear stage alone (what intake runs), the
embedding head alone and the cascade (linear, and for the uncertain band the mean with
the embedding head: screening and ``/classify``), and the same figures for ``pysenti``
and SnowNLP side by side. The report is printed and written to ``data/report.json``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, cast

import numpy as np

from services.sentiment import dataset
from services.sentiment.classifier import (
    MODEL_FILE,
    TOPICS,
    EmbeddingStage,
    Lexicon,
    SentimentModel,
    features,
    sigmoid,
    softmax,
)
from services.sentiment.evaluation import (
    baselines,
    breakdown,
    evaluate,
    meets_targets,
    negative_class_report,
    table,
)

UNCERTAIN_BAND = (0.3, 0.7)
REPORT_FILE = dataset.DATA / "report.json"
FOLDS = 5
# the threshold is the highest whose cross-validated recall reaches this: a missed
# complaint costs more than a false alert, but both must be rare
CV_RECALL_TARGET = 0.97


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


class Design:
    """The sparse feature matrix of a list of texts (rows, columns, values)."""

    def __init__(self, texts: list[str], lexicon: Lexicon, vocabulary: list[str] | None = None):
        grams = [features(text, lexicon)[1] for text in texts]
        if vocabulary is None:
            vocabulary = sorted(set().union(*grams))
        self.vocabulary = vocabulary
        index = {gram: i for i, gram in enumerate(vocabulary)}
        kept = [[index[g] for g in text_grams if g in index] for text_grams in grams]
        self.rows = np.concatenate([np.full(len(k), r) for r, k in enumerate(kept)]).astype(int)
        self.cols = np.concatenate([np.array(k, dtype=int) for k in kept])
        self.vals = np.concatenate(
            [np.full(len(k), 1 / max(1, len(g)) ** 0.5) for k, g in zip(kept, grams, strict=True)]
        )
        self.n = len(texts)
        self.size = len(vocabulary)

    def logits(self, w: np.ndarray, b: float) -> np.ndarray:
        return np.bincount(self.rows, weights=self.vals * w[self.cols], minlength=self.n) + b


def fit_negative(
    design: Design, labels: np.ndarray, *, l2: float, steps: int = 600
) -> tuple[np.ndarray, float]:
    """Logistic regression for the negative class, the classes weighted to equal mass."""
    n, size = design.n, design.size
    positives = max(1.0, labels.sum())
    weight = np.where(labels > 0, n / (2 * positives), n / (2 * max(1.0, n - positives)))
    w = np.zeros(size)
    b = np.zeros(1)

    def grads() -> list[np.ndarray]:
        residual = weight * (sigmoid(design.logits(w, b[0])) - labels) / n
        grad_w = np.bincount(
            design.cols, weights=design.vals * residual[design.rows], minlength=size
        )
        return [grad_w + l2 * w, np.array([residual.sum()])]

    _adam(grads, [w, b], steps=steps, rate=0.05)
    return w, float(b[0])


def fit_topics(design: Design, topics: np.ndarray, *, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression for the topic over the same features."""
    n = design.n
    onehot = np.eye(len(TOPICS))[topics]
    tw = np.zeros((design.size, len(TOPICS)))
    tb = np.zeros(len(TOPICS))
    rows, cols, vals = design.rows, design.cols, design.vals

    def grads() -> list[np.ndarray]:
        logits = np.zeros((n, len(TOPICS)))
        np.add.at(logits, rows, vals[:, None] * tw[cols])
        residual = (softmax(logits + tb) - onehot) / n
        grad = np.zeros_like(tw)
        np.add.at(grad, cols, vals[:, None] * residual[rows])
        return [grad + l2 * tw, residual.sum(axis=0)]

    _adam(grads, [tw, tb], steps=400, rate=0.05)
    return tw, tb


def cross_validated_scores(
    texts: list[str], labels: np.ndarray, lexicon: Lexicon, *, l2: float, seed: int = 7
) -> np.ndarray:
    """Out-of-fold scores of the negative head on the training split."""
    order = np.random.default_rng(seed).permutation(len(texts))
    scores = np.zeros(len(texts))
    for fold in range(FOLDS):
        held = order[fold::FOLDS]
        kept = np.setdiff1d(order, held)
        design = Design([texts[i] for i in kept], lexicon)
        w, b = fit_negative(design, labels[kept], l2=l2)
        probe = Design([texts[i] for i in held], lexicon, design.vocabulary)
        scores[held] = sigmoid(probe.logits(w, b))
    return scores


def choose_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The highest threshold whose recall on ``scores`` reaches ``CV_RECALL_TARGET``."""
    negatives = np.sort(scores[labels > 0])
    allowed_misses = int(np.floor(len(negatives) * (1 - CV_RECALL_TARGET)))
    return float(min(0.5, negatives[allowed_misses]))


def fit_linear(
    texts: list[str],
    labels: np.ndarray,
    topics: np.ndarray,
    *,
    l2: float,
    lexicon: Lexicon,
    threshold: float = 0.5,
) -> dict[str, np.ndarray]:
    """Both heads on all of ``texts``; the bias shifted so that 0.5 is the decision point
    (a score of ``threshold`` before the shift), which is what the service's
    ``negative_threshold`` compares with."""
    design = Design(texts, lexicon)
    w, b = fit_negative(design, labels, l2=l2)
    shift = float(np.log(threshold / (1 - threshold)))
    tw, tb = fit_topics(design, topics, l2=l2)
    return {
        "vocabulary": np.array(design.vocabulary),
        "negative_weights": w.astype(np.float32),
        "negative_bias": np.array(b - shift, dtype=np.float32),
        "topic_weights": tw.astype(np.float16),
        "topic_bias": tb.astype(np.float32),
        "band": np.array(UNCERTAIN_BAND, dtype=np.float32),
        **lexicon.arrays(),
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


def train(
    *,
    out: Path = MODEL_FILE,
    report_file: Path | None = REPORT_FILE,
    l2: float = 1e-5,
    use_embeddings: bool = True,
    with_baselines: bool = True,
) -> dict[str, Any]:
    """Fit on the training split, save the weights, report on the held-out split."""
    items = dataset.load()
    training = [item for item in items if item["split"] == "train"]
    held_out = [item for item in items if item["split"] == "test"]
    texts = [item["text"] for item in training]
    labels = np.array([float(item["negative"]) for item in training])
    topics = np.array([TOPICS.index(item["topic"]) for item in training])
    lexicon = Lexicon.load()
    cv_scores = cross_validated_scores(texts, labels, lexicon, l2=l2)
    threshold = choose_threshold(cv_scores, labels)
    weights = fit_linear(texts, labels, topics, l2=l2, lexicon=lexicon, threshold=threshold)
    if use_embeddings:
        stage = EmbeddingStage(np.zeros(1, dtype=np.float32), 0.0)
        vectors = stage.embed(texts).astype(np.float64)
        head, bias = fit_embedding_head(vectors, labels, l2=l2 * 10)
        weights["embedding_weights"] = head
        weights["embedding_bias"] = np.array(bias, dtype=np.float32)
    np.savez_compressed(out, **cast(dict[str, Any], weights))
    model = SentimentModel.load(out, use_embeddings=use_embeddings)
    cv_truth = [bool(x) for x in labels]
    report: dict[str, Any] = {
        "train_items": len(training),
        "train_by_origin": dataset.summary(training)["by_origin"],
        "held_out_items": len(held_out),
        "vocabulary": len(weights["vocabulary"]),
        "lexicon_words": len(weights["lexicon_words"]),
        "model_bytes": out.stat().st_size,
        "threshold_from_cross_validation": round(threshold, 3),
        "cross_validated": negative_class_report(
            [bool(s >= threshold) for s in cv_scores], cv_truth
        ),
        "held_out": evaluate(model, held_out),
    }
    if with_baselines:
        report["baselines"] = {
            name: breakdown(held_out, predicted) for name, predicted in baselines(held_out).items()
        }
    report["misses"] = {
        stage: meets_targets(report["held_out"][stage])
        for stage in ("linear", "cascade")
        if stage in report["held_out"]
    }
    report["table"] = table(report)
    if report_file is not None:
        report_file.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    parser.add_argument("--report", type=Path, default=REPORT_FILE)
    parser.add_argument("--l2", type=float, default=1e-5)
    parser.add_argument("--linear-only", action="store_true", help="no embedding head (no cascade)")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument(
        "--corrections-from-mongo",
        action="store_true",
        help="first export officers' corrections (CITYDESK_MONGO_URI / _DATABASE) into "
        "data/corrections.jsonl, which training uses",
    )
    args = parser.parse_args()
    if args.corrections_from_mongo:
        from services.sentiment.items import export_corrections_sync
        from shared.settings import load_settings

        settings = load_settings("sentiment")  # the service's database
        count = export_corrections_sync(
            settings.mongo_uri, settings.database_name, dataset.CORRECTIONS
        )
        print(f"exported {count} corrections to {dataset.CORRECTIONS}")
    report = train(
        out=args.out,
        report_file=args.report,
        l2=args.l2,
        use_embeddings=not args.linear_only,
        with_baselines=not args.no_baselines,
    )
    shown = {k: v for k, v in report.items() if k != "table"}
    print(json.dumps(shown, ensure_ascii=False, indent=1))
    print(report["table"])


if __name__ == "__main__":
    main()
