"""Search over stories without a text index (the MongoDB-wire server has none): every
story keeps the character bigrams of its title and body, and a phrase matches the
stories holding all of its bigrams, through a multikey index on that list. Chinese is
written without spaces, so bigrams find a phrase wherever it falls, with no dictionary."""

from __future__ import annotations

import re
import unicodedata

FIELD = "search_grams"
# a run of Chinese characters, or a word of letters and digits
_RUNS = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+|[0-9a-z]+")


def grams(text: str) -> list[str]:
    """The distinct bigrams of the Chinese runs and the whole words of ``text``."""
    found: dict[str, None] = {}
    for run in _RUNS.findall(unicodedata.normalize("NFKC", text).lower()):
        if not run.isascii() and len(run) > 1:
            found.update(dict.fromkeys(run[i : i + 2] for i in range(len(run) - 1)))
        else:
            found[run] = None
    return list(found)


def story_grams(title: str, body: str) -> list[str]:
    return grams(f"{title}\n{body}")
