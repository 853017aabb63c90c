"""The offline mini language suite: the generated tasks are in their official file formats and deterministic, the
pre-training corpus does not share the tasks' templates, and the shipped tiny GPT-2 / BART load offline, carry the
expected special tokens and match their training.json."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.data.generated_text import (
    E2E_KEYS,
    E2E_SIZES,
    TASK_PREPARERS,
    XSUM_SIZES,
    prepare_mini_e2e,
    prepare_mini_xsum,
    pretraining_corpus,
    tokenise,
)

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "bench" / "assets"
transformers = pytest.importorskip("transformers")


def folder_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def parse_mr(mr: str) -> dict[str, str]:
    pairs = [item.split(" : ", 1) for item in mr.split(" | ")]
    assert all(len(pair) == 2 for pair in pairs), mr
    return dict(pairs)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def word_ngrams(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z']+|\d+|[.,£%-]", tokenise(text).lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


# ---------------------------------------------------------------- the generated tasks


@pytest.fixture(scope="module")
def e2e_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gen") / "e2e"
    prepare_mini_e2e(root)
    return root


@pytest.fixture(scope="module")
def xsum_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gen") / "xsum"
    prepare_mini_xsum(root)
    return root


def test_e2e_is_in_li_and_liangs_format(e2e_root: Path) -> None:
    mrs_by_split: dict[str, list[str]] = {}
    for split, size in E2E_SIZES.items():
        lines = (e2e_root / f"src1_{split}.txt").read_text(encoding="utf-8").splitlines()
        assert lines and all(line.count("||") == 1 for line in lines)
        pairs = [line.split("||") for line in lines]
        order: list[str] = []  # MRs in first-occurrence order; their lines must be consecutive, as in E2E
        for mr, reference in pairs:
            fields = parse_mr(mr)
            assert next(iter(fields)) == "name" and 3 <= len(fields) <= 8
            assert [key for key in E2E_KEYS if key in fields] == list(fields)  # E2E's attribute order
            assert reference.strip() == reference and reference.endswith(" .")
            assert fields["name"] in reference
            if order and order[-1] == mr:
                continue
            assert mr not in order
            order.append(mr)
        counts = [sum(mr == m for m, _ in pairs) for mr in order]
        if split == "train":
            assert len(pairs) == size and max(counts) <= 2
        else:
            assert len(order) == size and min(counts) >= 1 and max(counts) <= 3 and max(counts) > 1
            assert all(len({r for m, r in pairs if m == mr}) == n for mr, n in zip(order, counts, strict=True))
        mrs_by_split[split] = order
    assert not set(mrs_by_split["test"]) & (set(mrs_by_split["train"]) | set(mrs_by_split["valid"]))


def test_e2e_references_state_every_value(e2e_root: Path) -> None:
    for line in (e2e_root / "src1_test.txt").read_text(encoding="utf-8").splitlines():
        mr, reference = line.split("||")
        text = reference.lower()
        for key, value in parse_mr(mr).items():
            if key == "family friendly":
                assert "friendly" in text or "children" in text, line
            elif key == "price" and "£" not in value:
                words = {"cheap": ("cheap", "low prices"), "moderate": ("moderate", "average prices"),
                         "high": ("expensive", "high prices")}[value]
                assert any(word in text for word in words), line
            else:
                assert value.lower() in text, (key, line)


def test_xsum_is_in_the_seq2seq_layout(xsum_root: Path) -> None:
    for split, size in XSUM_SIZES.items():
        documents = (xsum_root / f"{split}.source").read_text(encoding="utf-8").split("\n")
        summaries = (xsum_root / f"{split}.target").read_text(encoding="utf-8").split("\n")
        assert documents[-1] == summaries[-1] == ""  # one line each, newline-terminated
        documents, summaries = documents[:-1], summaries[:-1]
        assert len(documents) == len(summaries) == size
        for document, summary in zip(documents, summaries, strict=True):
            assert 3 <= len(sentences(document)) <= 5 and len(sentences(summary)) == 1
            assert summary not in document  # a paraphrase or an aggregate, never a copied sentence


@pytest.mark.parametrize("name", sorted(TASK_PREPARERS))
def test_generated_tasks_are_deterministic_and_atomic(name: str, tmp_path: Path) -> None:
    TASK_PREPARERS[name](tmp_path / "a")
    TASK_PREPARERS[name](tmp_path / "b")
    first = folder_bytes(tmp_path / "a")
    assert first == folder_bytes(tmp_path / "b") and ".complete" in first
    before = max(p.stat().st_mtime_ns for p in (tmp_path / "a").iterdir())
    TASK_PREPARERS[name](tmp_path / "a")  # idempotent: a finished folder is left alone
    assert max(p.stat().st_mtime_ns for p in (tmp_path / "a").iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no staging folder left behind


# ---------------------------------------------------------------- the pre-training corpus


def test_pretraining_corpus_is_a_pure_function_of_its_seed() -> None:
    assert pretraining_corpus(30, 0) == pretraining_corpus(30, 0) != pretraining_corpus(30, 1)
    assert all(text and "\n" not in text for text in pretraining_corpus(30, 0))


def test_pretraining_corpus_does_not_use_the_task_templates(e2e_root: Path, xsum_root: Path) -> None:
    corpus = pretraining_corpus(2000, 0)
    corpus_sentences = {tokenise(s) for text in corpus for s in sentences(text)}
    corpus_grams = set().union(*(word_ngrams(text) for text in corpus))
    task_texts = {
        "e2e": [line.split("||")[1] for line in (e2e_root / "src1_train.txt").read_text().splitlines()],
        "xsum": (xsum_root / "train.source").read_text().splitlines()
        + (xsum_root / "train.target").read_text().splitlines(),
    }
    for name, texts in task_texts.items():
        assert not {tokenise(s) for text in texts for s in sentences(text)} & corpus_sentences, name
        grams = set().union(*(word_ngrams(text) for text in texts))
        shared = grams & corpus_grams
        assert len(shared) < 0.02 * len(grams), (name, sorted(shared)[:20])


# ---------------------------------------------------------------- the shipped tiny models

MODELS = {"mini_gpt2": "GPT2LMHeadModel", "mini_bart": "BartForConditionalGeneration"}


@pytest.mark.parametrize("asset", sorted(MODELS))
def test_shipped_model_matches_its_training_record(asset: str) -> None:
    folder = ASSETS / asset
    meta = json.loads((folder / "training.json").read_text())
    for name, digest in meta["sha256"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    assert sum(p.stat().st_size for p in folder.iterdir()) < 3 * 2**20  # small enough to commit
    assert meta["held_out_loss"]["pretrained"] < 0.6 * meta["held_out_loss"]["random_init"]
    assert meta["task_text_loss"]["pretrained"] < meta["task_text_loss"]["random_init"] - 1.0


def test_gpt2_tokenizer_adds_nothing_and_pads_with_its_own_token() -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(ASSETS / "mini_gpt2")
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token, tokenizer.pad_token) == (
        "<|endoftext|>", "<|endoftext|>", "<|endoftext|>", "[PAD]")
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (0, 0, 1)
    text = "name : The Eagle | Type : coffee shop | price : less than £ 20"
    ids = tokenizer(text)["input_ids"]
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text  # byte-level: lossless, no unknown tokens


def test_bart_tokenizer_wraps_texts_like_bart() -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(ASSETS / "mini_bart")
    assert [tokenizer.convert_ids_to_tokens(i) for i in range(5)] == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id,
            tokenizer.mask_token_id) == (0, 1, 2, 3, 4)
    text = "Plans for 300 homes in Gremham have been approved."
    ids = tokenizer(text)["input_ids"]
    assert ids == [0, *tokenizer(text, add_special_tokens=False)["input_ids"], 2]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


@pytest.mark.parametrize("asset", sorted(MODELS))
def test_shipped_model_loads_offline_and_beam_searches(asset: str) -> None:
    import torch

    folder = ASSETS / asset
    model = getattr(transformers, MODELS[asset]).from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert model.config.vocab_size == len(tokenizer)
    assert (model.config.eos_token_id, model.config.pad_token_id) == (tokenizer.eos_token_id, tokenizer.pad_token_id)
    inputs = tokenizer(["The pub by the river is", "A storm cut power to 300 homes in the town."],
                       return_tensors="pt", padding=True, padding_side="left")
    with torch.no_grad():
        out = model.generate(**inputs, num_beams=3, max_new_tokens=12, do_sample=False)
    assert out.shape[0] == 2 and out.shape[1] > 1


@pytest.mark.long  # a pre-release check (about 4 minutes on 2 cores)
def test_retraining_reproduces_the_shipped_files() -> None:
    """Retrains both models: tokenizers byte for byte, weights byte for byte or (on another CPU's kernels) with
    every recorded loss within 0.002 nats (scripts/pretrain_mini_lms.py --check)."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "pretrain_mini_lms.py"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
