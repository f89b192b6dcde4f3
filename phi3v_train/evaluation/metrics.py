"""Task metrics: ANLS (DocVQA), exact-match accuracy, AUROC, F1 and the confusion matrix.

String handling follows Microsoft's recipe (SPEC section 1): ANLS strips the prediction with
``.strip().strip('.')`` and is case-sensitive; accuracy compares ``.strip().strip('.').lower()`` of
both sides. Pure Python, no third-party imports.
"""

from __future__ import annotations

from collections.abc import Sequence

ANLS_THRESHOLD = 0.5


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions, each costing 1) between two strings."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def normalized_levenshtein(a: str, b: str) -> float:
    """Levenshtein distance divided by the longer length; 0.0 for two empty strings."""
    longest = max(len(a), len(b))
    return levenshtein(a, b) / longest if longest else 0.0


def anls_score(prediction: str, answers: Sequence[str], threshold: float = ANLS_THRESHOLD) -> float:
    """One question's ANLS: the best ``1 - NL`` over the ground truths, 0 where ``NL >= threshold``.

    The prediction is stripped of whitespace and then of dots; ground truths are used as they are.
    An empty prediction scores 0.
    """
    cleaned = prediction.strip().strip(".")
    if not cleaned:
        return 0.0
    best = 0.0
    for answer in answers:
        distance = normalized_levenshtein(answer, cleaned)
        if distance < threshold:
            best = max(best, 1.0 - distance)
    return best


def normalize_answer(text: str) -> str:
    """The recipe's normalisation for exact match: strip whitespace, then dots, then lower-case."""
    return text.strip().strip(".").lower()


def exact_match(prediction: str, reference: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(reference)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks of ``values`` in ascending order; tied values share the mean of their ranks."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        shared = (start + end) / 2 + 1
        for position in range(start, end + 1):
            ranks[order[position]] = shared
        start = end + 1
    return ranks


def auroc(scores: Sequence[float], positives: Sequence[bool]) -> float:
    """Area under the ROC curve from the rank-sum (Mann-Whitney U) statistic, ties counted as 1/2.

    NaN when one of the two classes is absent.
    """
    n_pos = sum(1 for positive in positives if positive)
    n_neg = len(positives) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(scores)
    rank_sum = sum(rank for rank, positive in zip(ranks, positives, strict=True) if positive)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def macro_auroc(probabilities: Sequence[Sequence[float]], references: Sequence[int]) -> float:
    """One-vs-rest AUROC averaged over the classes present among ``references`` (and absent from none)."""
    n_classes = len(probabilities[0]) if probabilities else 0
    values = []
    for k in range(n_classes):
        positives = [reference == k for reference in references]
        value = auroc([row[k] for row in probabilities], positives)
        if value == value:
            values.append(value)
    return mean(values)


def confusion_matrix(references: Sequence[int], predictions: Sequence[int], n_classes: int) -> list[list[int]]:
    """``matrix[r][p]`` counts records with reference class ``r`` predicted as ``p``."""
    matrix = [[0] * n_classes for _ in range(n_classes)]
    for reference, prediction in zip(references, predictions, strict=True):
        matrix[reference][prediction] += 1
    return matrix


def f1_per_class(matrix: Sequence[Sequence[int]]) -> list[float]:
    """F1 of each class from a confusion matrix; 0.0 for a class never referenced nor predicted."""
    scores = []
    for k in range(len(matrix)):
        true_positive = matrix[k][k]
        predicted = sum(row[k] for row in matrix)
        actual = sum(matrix[k])
        denominator = predicted + actual
        scores.append(2 * true_positive / denominator if denominator else 0.0)
    return scores
