"""Task metrics: ANLS (DocVQA), exact-match accuracy, AUROC, F1, the ROC curve and the confusion matrix.

ANLS comes in two definitions (``--anls``):

* ``standard``, the DocVQA challenge's: both sides stripped, lower-cased and with inner whitespace
  collapsed (``" ".join(s.strip().lower().split())``); per question the best ``1 - NL`` over the
  ground truths, where ``NL`` is the edit distance over the longer normalised length, and 0 where
  ``NL >= 0.5``; two empty strings have ``NL = 0``. No punctuation or article removal. This is
  ``anls_score`` of the ``anls`` package (shunk031/ANLS: ``anls/metrics/score.py`` and
  ``anls/dist.py``, "based on the one provided by the Robust Reading Competition"), and lmms-eval's
  ``anls`` metric (EvolvingLMMs-Lab/lmms-eval: ``lmms_eval/api/metrics.py``, used by
  ``lmms_eval/tasks/docvqa``; a port of QwenLM/Qwen-VL ``eval_mm/infographicsvqa_eval.py``, itself
  from the RRC script). Where those two differ we follow the ``anls`` package: lmms-eval keeps
  ``NL = 0.5`` exactly (scoring 0.5) and divides by the length of the un-normalised strings.
* ``recipe``, Microsoft's Cookbook recipe (SPEC section 1): the prediction stripped of whitespace
  and then of dots, ground truths as they are, case-sensitive; an empty prediction scores 0.

Accuracy compares ``.strip().strip('.').lower()`` of both sides. Edit distances come from rapidfuzz.
"""

from __future__ import annotations

from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

ANLS_THRESHOLD = 0.5
ANLS_DEFINITIONS = ("standard", "recipe")


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions, each costing 1) between two strings."""
    return Levenshtein.distance(a, b)


def normalized_levenshtein(a: str, b: str) -> float:
    """Levenshtein distance divided by the longer length; 0.0 for two empty strings."""
    longest = max(len(a), len(b))
    return levenshtein(a, b) / longest if longest else 0.0


def normalize_anls(text: str) -> str:
    """The standard ANLS normalisation: stripped, lower-cased, inner whitespace collapsed to one space."""
    return " ".join(text.strip().lower().split())


def _best_similarity(prediction: str, answers: Sequence[str], threshold: float) -> float:
    best = 0.0
    for answer in answers:
        distance = normalized_levenshtein(answer, prediction)
        if distance < threshold:
            best = max(best, 1.0 - distance)
    return best


def anls_standard(prediction: str, answers: Sequence[str], threshold: float = ANLS_THRESHOLD) -> float:
    """One question's ANLS by the DocVQA challenge's definition (module docstring); 0 without answers."""
    return _best_similarity(normalize_anls(prediction), [normalize_anls(answer) for answer in answers], threshold)


def anls_recipe(prediction: str, answers: Sequence[str], threshold: float = ANLS_THRESHOLD) -> float:
    """One question's ANLS as the recipe computes it: case-sensitive, only the prediction cleaned."""
    cleaned = prediction.strip().strip(".")
    return _best_similarity(cleaned, answers, threshold) if cleaned else 0.0


def anls_score(
    prediction: str, answers: Sequence[str], definition: str = "standard", threshold: float = ANLS_THRESHOLD
) -> float:
    """One question's ANLS by ``definition`` (``standard`` or ``recipe``)."""
    if definition == "standard":
        return anls_standard(prediction, answers, threshold)
    if definition == "recipe":
        return anls_recipe(prediction, answers, threshold)
    raise ValueError(f"unknown ANLS definition {definition!r}; choose one of {', '.join(ANLS_DEFINITIONS)}")


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


def roc_points(scores: Sequence[float], positives: Sequence[bool]) -> list[tuple[float, float]]:
    """The ROC curve as ``(false positive rate, true positive rate)`` points from (0, 0) to (1, 1).

    Records with the same score move the curve together (a diagonal step), as the rank-sum AUROC counts them.
    """
    n_pos = sum(1 for positive in positives if positive)
    n_neg = len(positives) - n_pos
    if n_pos == 0 or n_neg == 0:
        return []
    points = [(0.0, 0.0)]
    true_pos = false_pos = 0
    ordered = sorted(zip(scores, positives, strict=True), key=lambda pair: -pair[0])
    for index, (score, positive) in enumerate(ordered):
        true_pos += positive
        false_pos += not positive
        if index + 1 == len(ordered) or ordered[index + 1][0] != score:
            points.append((false_pos / n_neg, true_pos / n_pos))
    return points


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
