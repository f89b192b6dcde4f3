"""Label scoring from the KV cache equals a plain full forward of prompt + answer."""

from __future__ import annotations

import math

import pytest
from reference.scoring import full_forward_score

from phi3v_train.evaluation.predict import PromptTurn
from phi3v_train.evaluation.scoring import candidate_token_ids, score_candidates, softmax
from phi3v_train.model.processing import IGNORE_INDEX

LABELS = ["Basketball", "BasketballDunk", "no", "A longer answer."]


def test_candidate_tokens_are_the_training_answer_up_to_end(processor) -> None:
    turn = PromptTurn(user="Q?", images=(), assistant="BasketballDunk")
    encoded = processor.encode_conversation([turn], [])
    trained = [label for label in encoded.labels if label != IGNORE_INDEX]
    ids = candidate_token_ids(processor.tokenizer, "BasketballDunk")
    assert ids[-1] == 32007
    assert trained[: len(ids)] == ids
    assert trained[len(ids) :] == [259, 13, 32000]  # '▁', '\n', <|endoftext|>: deterministic, not scored


@pytest.mark.parametrize("chunk_size", [1, 3, 16])
@pytest.mark.parametrize("image_count", [0, 2])
def test_cached_scores_equal_full_forward(tiny_model, processor, solid, chunk_size: int, image_count: int) -> None:
    images = [solid("red"), solid("blue", (30, 60))][:image_count]
    turn = PromptTurn(user="Which class?", images=tuple(str(n) for n in range(image_count)))
    prompt = processor.encode_conversation([turn], images, for_generation=True)
    candidates = [candidate_token_ids(processor.tokenizer, label) for label in LABELS]
    assert len({len(c) for c in candidates}) > 1
    scores = score_candidates(tiny_model, prompt, candidates, pad_id=32000, chunk_size=chunk_size)
    expected = [full_forward_score(tiny_model, prompt, c) for c in candidates]
    assert scores == pytest.approx(expected, abs=1e-4)
    assert all(score < 0 for score in scores)


def test_softmax() -> None:
    assert softmax([0.0, 0.0]) == [0.5, 0.5]
    assert softmax([1000.0, 1000.0 + math.log(3)]) == pytest.approx([0.25, 0.75])
