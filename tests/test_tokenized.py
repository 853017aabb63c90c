"""Token cache: encoded once per (split content, tokenizer, encoding), stored as flat int32 arrays + offsets, loaded
back exactly; batches built from it equal the training path's; damage is detected and the pairs encoded again."""

from __future__ import annotations

import logging
import types

import numpy as np
import pytest
import torch

from bench import registry
from bench.data import tokenized as tokenized_module
from bench.data.splits import ASSETS_DIR
from bench.data.tokenized import TokenizedPairs, tokenized, tokenizer_identity
from bench.spec import default_cache_dir

PAIRS = [("the cat sat on the mat", "a cat"), ("dogs bark at night and sleep by day", "dogs"),
         ("one", "two three four five six"), ("ünïcödé text, with punctuation!", "ok")]


def tokenizer(name: str = "mini_bart") -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(ASSETS_DIR / name))


class CountingEncode:
    """A BART-style encode (special tokens, truncation) that counts its calls."""

    def __init__(self, tok: object, max_source: int = 6) -> None:
        self.tok, self.max_source, self.calls = tok, max_source, 0

    def __call__(self, pair: tuple[str, str]) -> tuple[list[int], list[int]]:
        self.calls += 1
        tok: object = self.tok
        source = tok(pair[0], add_special_tokens=True, truncation=True, max_length=self.max_source)  # type: ignore[operator]
        target = tok(pair[1], add_special_tokens=True, truncation=True, max_length=4)  # type: ignore[operator]
        return source["input_ids"], target["input_ids"]


def test_round_trip_is_exact_and_the_second_call_encodes_nothing() -> None:
    tok = tokenizer()
    encode = CountingEncode(tok)
    expected = [encode(p) for p in PAIRS]
    encode.calls = 0
    first = tokenized("split-a", tok, encode, PAIRS, encode_version="bart:6:4")
    assert encode.calls == len(PAIRS)
    again = tokenized("split-a", tok, encode, PAIRS, encode_version="bart:6:4")
    assert encode.calls == len(PAIRS)  # loaded, not encoded
    for tokens in (first, again):
        assert [tokens.example(i) for i in range(len(tokens))] == expected
        assert tokens.ids.dtype == np.int32 and tokens.labels.dtype == np.int32
    assert again.ids.nbytes == 4 * sum(len(ids) for ids, _ in expected)  # 4 bytes a token
    assert len(list((default_cache_dir() / "tokens").glob("*.npy"))) == 1


def test_keyed_by_content_tokenizer_and_encoding() -> None:
    bart, gpt2 = tokenizer("mini_bart"), tokenizer("mini_gpt2")
    encode = CountingEncode(bart)
    tokenized("split-a", bart, encode, PAIRS, encode_version="bart:6:4")
    tokenized("split-b", bart, encode, PAIRS, encode_version="bart:6:4")  # other content
    tokenized("split-a", bart, encode, PAIRS, encode_version="bart:8:4")  # other encoding
    tokenized("split-a", gpt2, CountingEncode(gpt2), PAIRS, encode_version="bart:6:4")  # other tokenizer
    assert encode.calls == 3 * len(PAIRS)
    assert len(list((default_cache_dir() / "tokens").glob("*.npy"))) == 4


def test_tokenizer_identity_is_its_content_not_its_call_history() -> None:
    bart = tokenizer("mini_bart")
    before = tokenizer_identity(bart)
    bart("a long text " * 50, truncation=True, max_length=5)  # leaves truncation set on the backend
    assert tokenizer_identity(bart) == before == tokenizer_identity(tokenizer("mini_bart"))
    assert tokenizer_identity(tokenizer("mini_gpt2")) != before
    bart.add_special_tokens({"pad_token": "[NEWPAD]"})  # as the GPT-2 loader does: changes the encoding
    assert tokenizer_identity(bart) != before


@pytest.mark.parametrize("damage", ["truncate", "flip a token", "damage the index"])
def test_a_damaged_token_cache_is_discarded_and_encoded_again(damage: str, caplog: pytest.LogCaptureFixture) -> None:
    tok = tokenizer()
    encode = CountingEncode(tok)
    expected = tokenized("split-a", tok, encode, PAIRS, encode_version="v")
    expected_ids, expected_labels = expected.ids.copy(), expected.labels.copy()
    del expected
    (path,) = (default_cache_dir() / "tokens").glob("*.npy")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) - 8])
    elif damage == "flip a token":  # the file stays a readable .npy
        path.write_bytes(data[:-5] + bytes([data[-5] ^ 0x01]) + data[-4:])
    else:
        index = path.with_name(path.name.replace(".npy", ".index.npz"))
        index.write_bytes(index.read_bytes()[:100])
    tokenized_module._CHECKED.clear()  # a new process: nothing checked yet
    with caplog.at_level(logging.WARNING, logger="bench.cache"):
        rebuilt = tokenized("split-a", tok, encode, PAIRS, encode_version="v")
    assert encode.calls == 2 * len(PAIRS)
    assert sum("discarded" in r.getMessage() for r in caplog.records) == 1
    assert np.array_equal(rebuilt.ids, expected_ids) and np.array_equal(rebuilt.labels, expected_labels)


@pytest.mark.parametrize("task_name", ["mini/e2e", "mini/xsum"])
def test_padded_batches_equal_the_training_paths(task_name: str) -> None:
    """GPT-2 (labels -100 on the source, same width as the inputs) and BART (separate widths): the arrays built
    from the cache are the tensors TextBatcher.batches builds from lists."""
    from bench.train.text import TextBatcher

    task = registry.load_task_by_name(task_name)
    kind = "gpt2" if "e2e" in task_name else "bart"
    tok = tokenizer(f"mini_{kind}")
    if tok.pad_token is None:  # type: ignore[attr-defined]
        tok.add_special_tokens({"pad_token": "[PAD]"})  # type: ignore[attr-defined]
    batcher = TextBatcher(types.SimpleNamespace(tokenizer=tok, decoder_only=kind == "gpt2"), task)  # type: ignore[arg-type]
    pairs = [*PAIRS, ("x " * 300, "y " * 90)]  # one pair longer than both limits
    examples = batcher.training_examples(pairs)
    tokens = tokenized("s", tok, lambda p: batcher.training_examples([p])[0], pairs, encode_version=kind)
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0)).tolist()
    # The batches the training loop gets from the cached arrays are the padded lists of the encoded pairs.
    batch = next(batcher.batches(tokens, len(pairs), torch.Generator().manual_seed(0), torch.device("cpu")))
    chunk = [examples[i] for i in order]
    src = max(len(x) for x, _ in chunk)
    tgt = src if kind == "gpt2" else max(len(y) for _, y in chunk)
    assert batch["input_ids"].tolist() == [x + [tok.pad_token_id] * (src - len(x)) for x, _ in chunk]
    assert batch["attention_mask"].tolist() == [[1] * len(x) + [0] * (src - len(x)) for x, _ in chunk]
    assert batch["labels"].tolist() == [y + [-100] * (tgt - len(y)) for _, y in chunk]


def test_take_and_concat() -> None:
    def pairs_of(rows: list[tuple[list[int], list[int]]]) -> TokenizedPairs:
        ids = np.array([t for r, _ in rows for t in r], dtype=np.int32)
        labels = np.array([t for _, r in rows for t in r], dtype=np.int32)
        return TokenizedPairs(ids, np.cumsum([0] + [len(r) for r, _ in rows]),
                              labels, np.cumsum([0] + [len(r) for _, r in rows]))

    a_rows = [([1, 2, 3], [4]), ([5], [6, 7]), ([], [8])]
    b_rows = [([9, 10], [])]
    both = TokenizedPairs.concat([pairs_of(a_rows), pairs_of(b_rows)])
    assert [both.example(i) for i in range(len(both))] == [*a_rows, *b_rows]
    subset = both.take([3, 0, 2])
    assert [subset.example(i) for i in range(3)] == [b_rows[0], a_rows[0], a_rows[2]]
    assert [v.tolist() for v in both.lengths()] == [[3, 1, 0, 2], [1, 2, 1, 0]]
