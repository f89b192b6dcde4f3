"""Record token counts: exact with the real tokenizer (SPEC section 4), and the documented estimate."""

from __future__ import annotations

from pathlib import Path

import pytest
from recordkit import conversation, record, turn

from phi3v_data.errors import Phi3vDataError
from phi3v_data.schema import Record
from phi3v_data.token_count import TokenizerCounter, estimate_text_tokens, record_token_count, text_counter


def one_turn(images: list[str], **texts: str) -> Record:
    return Record.model_validate(record("r", images, **texts))


def test_exact_count_single_image(reference_dir: Path) -> None:
    counter = TokenizerCounter(reference_dir)
    # SPEC 4: '<|user|>\n' -> [1, 32010, 29871, 13]; image 336x336 at num_crops=1 -> 313 tokens;
    # '\nWhat is shown?<|end|>\n<|assistant|>\n' -> 11 ids with BOS; answer 'Yes<|end|>\n<|endoftext|>' -> 5 ids.
    assert record_token_count(one_turn(["x.jpg"]), [(336, 336)], 1, counter) == 4 + 313 + 11 + 5
    assert record_token_count(one_turn(["x.jpg"]), [(336, 336)], 4, counter) == 4 + 757 + 11 + 5


def test_exact_count_adjacent_images(reference_dir: Path) -> None:
    counter = TokenizerCounter(reference_dir)
    # Two untagged images: '<|user|>\n' 4, image 1, the empty chunk between the tags [1], image 2,
    # '\nQ?<|end|>\n<|assistant|>\n' 9 ids with BOS (SPEC 4), then the answer 5.
    two_images = one_turn(["a.jpg", "b.jpg"], user="Q?")
    assert record_token_count(two_images, [(336, 336), (336, 336)], 1, counter) == 4 + 313 + 1 + 313 + 9 + 5


def test_exact_count_text_only_multi_turn(reference_dir: Path) -> None:
    counter = TokenizerCounter(reference_dir)
    two_turns = Record.model_validate(conversation("r", turn("What is shown?", "Yes"), turn("What is shown?", "Yes")))
    # Without images the whole conversation is one chunk, from the SPEC 4 ids: [1, 32010, 29871, 13] then
    # 'What is shown?<|end|>\n<|assistant|>' as [5618, 338, 4318, 29973, 32007, 29871, 13, 32001]: 12 ids;
    # the first answer 'Yes<|end|>\n' (4), the second prompt without BOS (11), the final answer (5).
    assert record_token_count(two_turns, [], 16, counter) == 12 + 4 + 11 + 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("<|user|>\n", 3),
        ("Yes<|end|>\n<|endoftext|>", 5),
        ("\nWhat is shown?<|end|>\n<|assistant|>\n", 13),
        ("15 March 2021", 6 + 3),
        ("héllo", 2),
    ],
)
def test_estimate(text: str, expected: int) -> None:
    assert estimate_text_tokens(text) == expected


def test_estimate_is_used_without_tokenizer() -> None:
    assert text_counter(None) is estimate_text_tokens
    # '<|user|>\n' 3+1, image 313, '\nWhat is shown?<|end|>\n<|assistant|>\n' 13+1, answer 'Yes...' 5.
    assert record_token_count(one_turn(["x.jpg"]), [(336, 336)], 1, estimate_text_tokens) == 4 + 313 + 14 + 5


def test_sizes_must_match_images() -> None:
    with pytest.raises(ValueError, match="has 2 image"):
        record_token_count(one_turn(["a.jpg", "b.jpg"]), [(10, 10)], 4, estimate_text_tokens)


def test_tokenizer_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(Phi3vDataError, match=r"no tokenizer\.json"):
        TokenizerCounter(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(Phi3vDataError, match="cannot load"):
        TokenizerCounter(tmp_path)
