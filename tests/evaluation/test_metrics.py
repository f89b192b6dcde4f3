"""Metrics on hand-computed cases; ANLS against an independent implementation of the challenge's
definition, AUROC against a pairwise count, and both AUROC and F1 against scikit-learn when installed."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phi3v_train.evaluation.metrics import (
    anls_recipe,
    anls_score,
    anls_standard,
    auroc,
    average_ranks,
    confusion_matrix,
    exact_match,
    f1_per_class,
    levenshtein,
    macro_auroc,
    normalize_answer,
    roc_points,
)


def pairwise_auroc(scores: list[float], positives: list[bool]) -> float:
    """The definition: P(score of a random positive > score of a random negative), ties counting 1/2."""
    pos = [s for s, p in zip(scores, positives, strict=True) if p]
    neg = [s for s, p in zip(scores, positives, strict=True) if not p]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [("kitten", "sitting", 3), ("", "abc", 3), ("flaw", "lawn", 2), ("same", "same", 0), ("ab", "ba", 2)],
)
def test_levenshtein(a: str, b: str, distance: int) -> None:
    assert levenshtein(a, b) == distance
    assert levenshtein(b, a) == distance


@pytest.mark.parametrize(
    ("prediction", "answers", "expected"),
    [
        ("Paris", ["Paris"], 1.0),
        (" Paris. ", ["Paris"], 1.0),
        ("paris", ["Paris"], 0.8),  # case-sensitive: 1 edit over 5 characters
        ("abcx", ["abcd"], 0.75),  # NL 0.25
        ("abxy", ["abcd"], 0.0),  # NL exactly 0.5 is not below the threshold
        ("abcdxy", ["abcdef"], 1 - 2 / 6),
        ("abcxyz", ["abcdef"], 0.0),  # NL 3/6
        ("abcd", ["abcdefg"], 1 - 3 / 7),  # NL 0.43 just under the threshold
        ("1985", ["1984", "the year 1984"], 0.75),  # best of several ground truths
        ("year 1984", ["1984", "the year 1984"], 1 - 4 / 13),
        ("the year 1984", ["1984", "the year 1984"], 1.0),
        ("", ["Paris"], 0.0),
        (" .. ", ["Paris"], 0.0),  # empty after stripping
        ("", [""], 0.0),  # empty prediction scores 0 even against an empty answer
        ("x", [], 0.0),
    ],
)
def test_anls_recipe(prediction: str, answers: list[str], expected: float) -> None:
    assert anls_recipe(prediction, answers) == pytest.approx(expected)
    assert anls_score(prediction, answers, "recipe") == pytest.approx(expected)


def test_anls_recipe_ground_truths_are_not_normalised() -> None:
    assert anls_recipe("Paris", ["Paris."]) == pytest.approx(1 - 1 / 6)


@pytest.mark.parametrize(
    ("prediction", "answers", "expected"),
    [
        ("TOTAL", ["Total"], 1.0),  # case: lower-cased on both sides
        ("paris", ["PARIS"], 1.0),
        ("  Total  ", ["total"], 1.0),  # stripped
        ("new   york", ["New York"], 1.0),  # inner whitespace collapsed
        ("new\tyork\n", [" new york "], 1.0),
        ("newyork", ["new york"], 1 - 1 / 8),  # the space itself still counts
        ("Paris.", ["Paris"], 1 - 1 / 6),  # dots are not removed
        ("U.S.A.", ["usa"], 0.0),  # 3 edits over 6 characters: NL 0.5, not below the threshold
        ("1985", ["1984", "the year 1984"], 0.75),  # best of several ground truths
        ("The Year 1984", ["1984", "the year 1984"], 1.0),
        ("year 1984", ["1984", "the year 1984"], 1 - 4 / 13),
        ("abcx", ["ABCD"], 0.75),  # NL 0.25
        ("abxy", ["abcd"], 0.0),  # NL exactly 0.5 scores 0
        ("abcd", ["abcdefg"], 1 - 3 / 7),  # NL 0.43, just under
        ("", [""], 1.0),  # two empty strings: NL 0
        (" ", ["Paris"], 0.0),
        ("x", [], 0.0),
    ],
)
def test_anls_standard(prediction: str, answers: list[str], expected: float) -> None:
    assert anls_standard(prediction, answers) == pytest.approx(expected)
    assert anls_score(prediction, answers) == pytest.approx(expected)


def reference_anls(prediction: str, answers: list[str], threshold: float = 0.5) -> float:
    """The DocVQA challenge's ANLS written out independently: a full dynamic-programming edit distance
    over normalised strings, ``1 - NL`` zeroed from ``NL >= threshold``, the best over the answers."""

    def norm(text: str) -> str:
        return " ".join(text.strip().lower().split())

    def distance(a: str, b: str) -> int:
        table = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                table[i][j] = min(
                    table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + (a[i - 1] != b[j - 1])
                )
        return table[len(a)][len(b)]

    scores = []
    for answer in answers:
        p, g = norm(prediction), norm(answer)
        nl = distance(p, g) / max(len(p), len(g)) if max(len(p), len(g)) else 0.0
        scores.append(1 - nl if nl < threshold else 0.0)
    return max(scores)


@given(
    st.text(alphabet="aAbB .\t", max_size=8),
    st.lists(st.text(alphabet="aAbB .\t", max_size=8), min_size=1, max_size=3),
)
def test_anls_standard_matches_an_independent_implementation(prediction: str, answers: list[str]) -> None:
    assert anls_standard(prediction, answers) == pytest.approx(reference_anls(prediction, answers))


def test_anls_rejects_an_unknown_definition() -> None:
    with pytest.raises(ValueError, match="standard, recipe"):
        anls_score("a", ["a"], "lmms")


@pytest.mark.parametrize(
    ("prediction", "reference", "equal"),
    [
        (" Yes. ", "yes", True),
        ("..YES..", "Yes", True),
        ("BabyCrawling", "babycrawling", True),
        ("yes!", "yes", False),
        ("Basketball", "BasketballDunk", False),
        ("no .", "no", False),  # only the outer dots go, then no second whitespace strip
    ],
)
def test_exact_match_normalisation(prediction: str, reference: str, equal: bool) -> None:
    assert exact_match(prediction, reference) is equal


def test_normalize_answer() -> None:
    assert normalize_answer("  The Cat.\n") == "the cat"


def test_average_ranks_share_ties() -> None:
    assert average_ranks([0.5, 0.2, 0.5, 0.9, 0.5]) == [3.0, 1.0, 3.0, 5.0, 3.0]


def test_auroc_known_example() -> None:
    scores = [0.1, 0.4, 0.35, 0.8]
    positives = [False, False, True, True]
    assert auroc(scores, positives) == pytest.approx(0.75)
    assert pairwise_auroc(scores, positives) == pytest.approx(0.75)


def test_auroc_with_ties() -> None:
    scores = [0.5, 0.5, 0.2, 0.9]
    positives = [True, False, False, True]
    # pairs (pos, neg): (0.5, 0.5) half, (0.5, 0.2) win, (0.9, 0.5) win, (0.9, 0.2) win -> 3.5 / 4
    assert auroc(scores, positives) == pytest.approx(0.875)
    # the tied pair moves the curve diagonally: (0, 0) -> (0, 1/2) -> (1/2, 1) -> (1, 1); area 7/8
    assert roc_points(scores, positives) == [(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]


# ties in the scores (0.6 three times, 0.3 twice); threshold 0.5 -> predictions [1, 1, 1, 0, 0, 1, 0]
TIED_SCORES = [0.6, 0.6, 0.6, 0.3, 0.3, 0.9, 0.1]
TIED_LABELS = [1, 0, 1, 1, 0, 0, 0]


def test_auroc_and_f1_on_ties_by_hand() -> None:
    positives = [label == 1 for label in TIED_LABELS]
    # positives 0.6, 0.6, 0.3 vs negatives 0.6, 0.3, 0.9, 0.1:
    # 0.6 -> 0.5 + 1 + 0 + 1 = 2.5 (twice); 0.3 -> 0 + 0.5 + 0 + 1 = 1.5; total 6.5 of 12
    assert auroc(TIED_SCORES, positives) == pytest.approx(6.5 / 12)
    predictions = [int(score > 0.5) for score in TIED_SCORES]
    matrix = confusion_matrix(TIED_LABELS, predictions, 2)
    assert matrix == [[2, 2], [1, 2]]
    # positive class: tp 2, fp 2, fn 1 -> 2 * 2 / (2 * 2 + 2 + 1) = 4/7
    assert f1_per_class(matrix)[1] == pytest.approx(4 / 7)


def test_auroc_and_f1_match_scikit_learn() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    positives = [label == 1 for label in TIED_LABELS]
    assert auroc(TIED_SCORES, positives) == pytest.approx(sklearn_metrics.roc_auc_score(TIED_LABELS, TIED_SCORES))
    predictions = [int(score > 0.5) for score in TIED_SCORES]
    f1 = f1_per_class(confusion_matrix(TIED_LABELS, predictions, 2))
    assert f1[1] == pytest.approx(sklearn_metrics.f1_score(TIED_LABELS, predictions))
    assert sum(f1) / 2 == pytest.approx(sklearn_metrics.f1_score(TIED_LABELS, predictions, average="macro"))


def test_auroc_undefined_with_one_class() -> None:
    assert auroc([0.1, 0.2], [True, True]) != auroc([0.1, 0.2], [True, True])


@given(
    st.lists(
        st.tuples(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.7, 1.0]), st.booleans()),
        min_size=2,
        max_size=30,
    ).filter(lambda rows: 0 < sum(p for _, p in rows) < len(rows))
)
def test_auroc_equals_pairwise_definition(rows: list[tuple[float, bool]]) -> None:
    scores = [s for s, _ in rows]
    positives = [p for _, p in rows]
    assert auroc(scores, positives) == pytest.approx(pairwise_auroc(scores, positives))


def test_macro_auroc_skips_absent_classes() -> None:
    probabilities = [[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.6, 0.3, 0.1]]
    references = [0, 1, 1]
    # class 0: pos score 0.7 vs neg 0.3, 0.6 -> 1.0; class 1: pos 0.6, 0.3 vs neg 0.2 -> 1.0; class 2 absent
    assert macro_auroc(probabilities, references) == pytest.approx(1.0)
    # class 0: pos 0.4, 0.7 vs neg 0.6 -> 1/2; class 1: pos 0.4 vs neg 0.6, 0.3 -> 1/2
    assert macro_auroc([[0.4, 0.6], [0.6, 0.4], [0.7, 0.3]], [0, 1, 0]) == pytest.approx(0.5)


def test_confusion_matrix_and_f1() -> None:
    references = [0, 0, 1, 1, 1, 2]
    predictions = [0, 1, 1, 1, 0, 2]
    matrix = confusion_matrix(references, predictions, 3)
    assert matrix == [[1, 1, 0], [1, 2, 0], [0, 0, 1]]
    # class 0: tp 1, predicted 2, actual 2; class 1: tp 2, predicted 3, actual 3; class 2 perfect
    assert f1_per_class(matrix) == pytest.approx([0.5, 2 / 3, 1.0])
    assert f1_per_class(confusion_matrix([0, 0], [0, 0], 2)) == [1.0, 0.0]
