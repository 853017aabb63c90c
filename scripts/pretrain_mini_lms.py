"""Pre-train the mini language suite's tiny GPT-2 and BART on generated text; write bench/assets/mini_{gpt2,bart}/.

Each folder holds what `from_pretrained` needs offline: config.json, generation_config.json, model.safetensors,
tokenizer.json, tokenizer_config.json, plus training.json (recipe, losses, versions, sha256 of the files).
The corpus (bench.data.generated_text.pretraining_corpus) shares the mini tasks' vocabulary but none of their
templates, so the frozen models carry something to transfer without having seen the downstream data.

  - tokenizer: byte-level BPE trained on the corpus (tokenizers library), like GPT-2's and BART's;
  - GPT-2: causal LM on the corpus packed into 256-token blocks separated by <|endoftext|>;
  - BART: denoising, as BART's span corruption but keeping the length: in random crops of the texts, ~30% of
    the tokens (Poisson(3) spans) become <mask>; the decoder reconstructs the crop. (Collapsing each span to
    one <mask>, BART's text infilling, keeps a model this small from discovering copying within the budget.)

    python scripts/pretrain_mini_lms.py                 # ~3.5 minutes on 2 CPU cores
    python scripts/pretrain_mini_lms.py --check         # retrain in a temp folder; compare with the shipped files

Same CPU, same thread count, same library versions -> bit-identical files (sha256 in training.json). On another
CPU the kernels sum in another order: two retrainings there agree with each other bit for bit, but the GPT-2
weights differ from the shipped ones by up to ~5e-4 (measured 2026-12-03) while every recorded loss reproduces to
4 decimals. --check therefore requires the tokenizer byte for byte and the weights either byte for byte or with
the recorded losses (final training loss, held-out loss, task-text loss) within LOSS_TOLERANCE, and reports the
largest weight difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.data.generated_text import (  # noqa: E402
    E2E_SEED,
    XSUM_SEED,
    XSUM_SIZES,
    e2e_split,
    pretraining_corpus,
    xsum_example,
)

ASSETS = ROOT / "bench" / "assets"
CORPUS_SEED, HELD_OUT_SEED = 0, 1
HELD_OUT_TEXTS = 400
WEIGHT_FILES = ("model.safetensors", "tokenizer.json")  # what --check compares byte for byte
LOSS_TOLERANCE = 2e-3  # nats: how far a retraining on another CPU may move a recorded loss

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the weights (recorded in training.json)."""

    kind: Literal["gpt2", "bart"]
    vocab_size: int  # tokenizer, special tokens included
    hidden: int
    layers: int  # GPT-2: blocks; BART: encoder layers = decoder layers
    heads: int
    positions: int
    corpus_texts: int
    steps: int
    batch_size: int
    max_tokens: int  # GPT-2: block length; BART: longest source / target
    lr: float
    warmup_steps: int
    weight_decay: float
    seed: int
    init_std: float = 0.02  # std of the initial weights (transformers' default 0.02)
    min_crop: int = 0  # BART: shortest training crop (tokens)
    mask_ratio: float = 0.0  # BART: share of tokens masked, in spans of Poisson(mean_span) length
    mean_span: float = 0.0


RECIPES = {
    "gpt2": Recipe(kind="gpt2", vocab_size=2000, hidden=64, layers=4, heads=4, positions=256, corpus_texts=20_000,
                   steps=600, batch_size=8, max_tokens=256, lr=3e-3, warmup_steps=60, weight_decay=0.01, seed=0),
    # init_std 0.1 (not 0.02): with a 2000-token vocabulary and d_model 64, copying from the encoder does not
    # emerge within the budget from the default initialisation (the loss stalls at the decoder-only LM level).
    "bart": Recipe(kind="bart", vocab_size=2000, hidden=64, layers=2, heads=4, positions=256, corpus_texts=20_000,
                   steps=1200, batch_size=16, max_tokens=160, min_crop=8, lr=3e-3, warmup_steps=60,
                   weight_decay=0.01, seed=0, init_std=0.1, mask_ratio=0.3, mean_span=3.0),
}
SPECIAL_TOKENS = {  # in id order: GPT-2 keeps <|endoftext|> as bos = eos = unk; BART keeps fairseq's first four ids
    "gpt2": ["<|endoftext|>", "[PAD]"],
    "bart": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
}


# ---------------------------------------------------------------- tokenizer


def train_tokenizer(recipe: Recipe, texts: list[str]) -> Any:
    """Byte-level BPE (GPT-2's pre-tokenizer and decoder) wrapped as a transformers fast tokenizer.

    GPT-2 adds nothing to a text (callers place <|endoftext|> themselves, as with the real GPT-2);
    BART wraps every text as `<s> ... </s>`, as facebook/bart-* does."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = SPECIAL_TOKENS[recipe.kind]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=recipe.vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    if recipe.kind == "gpt2":
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
        return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|endoftext|>",
                                       eos_token="<|endoftext|>", unk_token="<|endoftext|>", pad_token="[PAD]",
                                       model_max_length=recipe.positions)
    bos, eos = tokenizer.token_to_id("<s>"), tokenizer.token_to_id("</s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", cls_token="<s>", sep_token="</s>",
                                   mask_token=AddedToken("<mask>", lstrip=True, rstrip=False, special=True),
                                   model_max_length=recipe.positions)


def encode(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids without special tokens."""
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


# ---------------------------------------------------------------- models


def build_model(recipe: Recipe, tokenizer: Any) -> Any:
    from transformers import BartConfig, BartForConditionalGeneration, GenerationConfig, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(recipe.seed)
    if recipe.kind == "gpt2":
        config = GPT2Config(vocab_size=len(tokenizer), n_positions=recipe.positions, n_embd=recipe.hidden,
                            n_layer=recipe.layers, n_head=recipe.heads, bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                            initializer_range=recipe.init_std)
        model: Any = GPT2LMHeadModel(config)
        model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                                   eos_token_id=tokenizer.eos_token_id,
                                                   pad_token_id=tokenizer.pad_token_id)
        return model
    config = BartConfig(vocab_size=len(tokenizer), d_model=recipe.hidden, encoder_layers=recipe.layers,
                        decoder_layers=recipe.layers, encoder_attention_heads=recipe.heads,
                        decoder_attention_heads=recipe.heads, encoder_ffn_dim=4 * recipe.hidden,
                        decoder_ffn_dim=4 * recipe.hidden, max_position_embeddings=recipe.positions,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, decoder_start_token_id=tokenizer.eos_token_id,
                        init_std=recipe.init_std)
    model = BartForConditionalGeneration(config)
    # facebook/bart-large's generation settings: the decoder starts from </s>, then <s> is forced.
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id,
                                               decoder_start_token_id=tokenizer.eos_token_id,
                                               forced_bos_token_id=tokenizer.bos_token_id,
                                               forced_eos_token_id=tokenizer.eos_token_id)
    return model


# ---------------------------------------------------------------- examples


def gpt2_blocks(ids: list[list[int]], eos: int, length: int) -> torch.Tensor:
    """The texts packed into one stream, <|endoftext|> after each, cut into blocks of `length` (GPT-2's recipe)."""
    stream = [token for text in ids for token in (*text, eos)]
    count = len(stream) // length
    return torch.tensor(stream[: count * length]).view(count, length)


def mask_spans(ids: list[int], rng: np.random.Generator, mask: int, ratio: float, mean_span: float) -> list[int]:
    """Span masking: spans of Poisson(mean_span) length (at least 1) cover ~ratio of the tokens, each masked
    token replaced by <mask> (the length is kept, unlike BART's text infilling, so a tiny model learns to copy
    from the encoder within the CPU budget)."""
    budget = round(len(ids) * ratio)
    masked = np.zeros(len(ids), dtype=bool)
    while budget > 0 and not masked.all():
        span = min(budget, max(1, int(rng.poisson(mean_span))))
        start = int(rng.integers(0, max(1, len(ids) - span + 1)))
        budget -= int((~masked[start:start + span]).sum())
        masked[start:start + span] = True
    return [mask if hidden else token for token, hidden in zip(ids, masked, strict=True)]


def random_crop(ids: list[int], rng: np.random.Generator, shortest: int, longest: int) -> list[int]:
    """A contiguous piece of uniformly random length in [shortest, longest] (short pieces make copying from the
    encoder easy to discover; long ones train every position)."""
    length = int(rng.integers(shortest, longest + 1))
    start = int(rng.integers(0, max(1, len(ids) - length + 1)))
    return ids[start:start + length]


def bart_targets(ids: list[list[int]], tokenizer: Any, recipe: Recipe) -> list[list[int]]:
    """Every text as `<s> ... </s>`, at most max_tokens long."""
    return [[tokenizer.bos_token_id, *text[: recipe.max_tokens - 2], tokenizer.eos_token_id] for text in ids]


def bart_pairs(targets: list[list[int]], tokenizer: Any, recipe: Recipe, rng: np.random.Generator
               ) -> list[tuple[list[int], list[int]]]:
    """(corrupted source, original target) per target; the special tokens around the text stay in place."""
    mask = tokenizer.mask_token_id
    return [([target[0], *mask_spans(target[1:-1], rng, mask, recipe.mask_ratio, recipe.mean_span), target[-1]],
             target) for target in targets]


def bart_batch(pairs: list[tuple[list[int], list[int]]], pad: int) -> Batch:
    src_width = max(len(s) for s, _ in pairs)
    tgt_width = max(len(t) for _, t in pairs)
    return {
        "input_ids": torch.tensor([s + [pad] * (src_width - len(s)) for s, _ in pairs]),
        "attention_mask": torch.tensor([[1] * len(s) + [0] * (src_width - len(s)) for s, _ in pairs]),
        "labels": torch.tensor([t + [-100] * (tgt_width - len(t)) for _, t in pairs]),
    }


def gpt2_batch(blocks: torch.Tensor) -> Batch:
    return {"input_ids": blocks, "labels": blocks}


# ---------------------------------------------------------------- training


def token_loss(model: Any, batch: Batch) -> tuple[torch.Tensor, int]:
    """(summed token NLL, token count): GPT-2 predicts every next token, BART every target token."""
    labels = batch["labels"]
    if model.config.model_type == "gpt2":
        logits = model(input_ids=batch["input_ids"]).logits[:, :-1]
        labels = labels[:, 1:]  # position t predicts token t + 1
    else:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       decoder_input_ids=shift_right(labels, model.config)).logits
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100,
                                            reduction="sum")
    return nll, int((labels != -100).sum())


def shift_right(labels: torch.Tensor, config: Any) -> torch.Tensor:
    from transformers.models.bart.modeling_bart import shift_tokens_right

    return shift_tokens_right(labels.masked_fill(labels < 0, config.pad_token_id), config.pad_token_id,
                              config.decoder_start_token_id)


@torch.no_grad()
def mean_loss(model: Any, batches: list[Batch]) -> float:
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        nll, tokens = token_loss(model, batch)
        total, count = total + float(nll), count + tokens
    return total / count


def train(model: Any, recipe: Recipe, next_batch: Callable[[int], Batch]) -> tuple[list[float], float]:
    """AdamW, linear warm-up then linear decay to 0 per step, gradient clipping at 1.0 (transformers' defaults).
    Returns (per-step training losses, seconds)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]  # matrices and embeddings; not biases or norms
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=recipe.lr, eps=1e-8)
    losses = []
    started = time.time()
    model.train()
    for step in range(recipe.steps):
        if step < recipe.warmup_steps:
            factor = (step + 1) / recipe.warmup_steps
        else:
            factor = max(0.0, (recipe.steps - step) / (recipe.steps - recipe.warmup_steps))
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr * factor
        nll, tokens = token_loss(model, next_batch(step))
        loss = nll / tokens
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0 or step + 1 == recipe.steps:
            print(f"  step {step + 1}/{recipe.steps}: loss {np.mean(losses[-100:]):.3f} "
                  f"({time.time() - started:.0f} s)", flush=True)
    model.eval()
    return losses, time.time() - started


def epochs_of(count: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Index batches over shuffled epochs, forever."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(count, generator=generator).tolist()
        for start in range(0, count - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


# ---------------------------------------------------------------- the downstream text (a transfer probe only)


def task_texts(kind: str) -> tuple[str, list[str]]:
    """Text of the mini task a model serves (validation split), to measure loss there before fine-tuning."""
    if kind == "gpt2":
        rng = np.random.default_rng(E2E_SEED)
        seen: set[str] = set()
        e2e_split(rng, "train", seen)
        return "mini/e2e valid references", [reference for _, reference in e2e_split(rng, "valid", seen)]
    rng = np.random.default_rng(XSUM_SEED)
    for _ in range(XSUM_SIZES["train"]):
        xsum_example(rng)
    return "mini/xsum val documents", [xsum_example(rng)[0] for _ in range(XSUM_SIZES["val"])]


# ---------------------------------------------------------------- one model, end to end


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pretrain(recipe: Recipe, out: Path) -> dict[str, Any]:
    """Train tokenizer + model and write them (and training.json) into `out`; returns the metadata."""
    import safetensors
    import tokenizers
    import transformers

    started = time.time()
    corpus = pretraining_corpus(recipe.corpus_texts, CORPUS_SEED)
    held_out = pretraining_corpus(HELD_OUT_TEXTS, HELD_OUT_SEED)
    tokenizer = train_tokenizer(recipe, corpus)
    model = build_model(recipe, tokenizer)
    probe_name, probe = task_texts(recipe.kind)
    if recipe.kind == "gpt2":
        blocks = gpt2_blocks(encode(tokenizer, corpus), tokenizer.eos_token_id, recipe.max_tokens)
        held_blocks = gpt2_blocks(encode(tokenizer, held_out), tokenizer.eos_token_id, recipe.max_tokens)
        held = [gpt2_batch(held_blocks[i:i + 32]) for i in range(0, len(held_blocks), 32)]
        probe_ids = [[tokenizer.eos_token_id, *ids, tokenizer.eos_token_id] for ids in encode(tokenizer, probe)]
        probe_batches = [gpt2_batch(torch.tensor([ids])) for ids in probe_ids]
        batches = epochs_of(len(blocks), recipe.batch_size, recipe.seed)
        examples = len(blocks)

        def next_batch(step: int) -> Batch:
            return gpt2_batch(blocks[next(batches)])
    else:
        pad = tokenizer.pad_token_id
        texts = encode(tokenizer, corpus)
        held_rng = np.random.default_rng(HELD_OUT_SEED)  # one fixed corruption of the held-out and probe texts
        held_pairs = bart_pairs(bart_targets(encode(tokenizer, held_out), tokenizer, recipe), tokenizer, recipe,
                                held_rng)
        held = [bart_batch(held_pairs[i:i + 32], pad) for i in range(0, len(held_pairs), 32)]
        probe_pairs = bart_pairs(bart_targets(encode(tokenizer, probe), tokenizer, recipe), tokenizer, recipe,
                                 held_rng)
        probe_batches = [bart_batch(probe_pairs[i:i + 32], pad) for i in range(0, len(probe_pairs), 32)]
        batches = epochs_of(len(texts), recipe.batch_size, recipe.seed)
        rng = np.random.default_rng(recipe.seed)
        examples = len(texts)

        def next_batch(step: int) -> Batch:
            # a random crop of each text, freshly corrupted every time (BART corrupts on the fly)
            crops = [random_crop(texts[i], rng, recipe.min_crop, recipe.max_tokens - 2) for i in next(batches)]
            return bart_batch(bart_pairs(bart_targets(crops, tokenizer, recipe), tokenizer, recipe, rng), pad)

    random_held, random_probe = mean_loss(model, held), mean_loss(model, probe_batches)
    print(f"{recipe.kind}: {sum(p.numel() for p in model.parameters()):,} parameters, vocabulary {len(tokenizer)}, "
          f"{examples} training {'blocks' if recipe.kind == 'gpt2' else 'texts'}; random-init held-out loss "
          f"{random_held:.3f}", flush=True)
    losses, seconds = train(model, recipe, next_batch)
    pretrained_held, pretrained_probe = mean_loss(model, held), mean_loss(model, probe_batches)
    print(f"{recipe.kind}: held-out loss {pretrained_held:.3f} (random init {random_held:.3f}); {probe_name} "
          f"{pretrained_probe:.3f} (random init {random_probe:.3f})", flush=True)

    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    # transformers 5 names its backend class here; the generic name also loads on transformers 4.
    config_path = staging / "tokenizer_config.json"
    tokenizer_config = json.loads(config_path.read_text())
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(tokenizer_config, indent=2, sort_keys=True) + "\n")
    meta: dict[str, Any] = {
        "model": "GPT2LMHeadModel" if recipe.kind == "gpt2" else "BartForConditionalGeneration",
        "objective": ("causal LM on 256-token blocks" if recipe.kind == "gpt2"
                      else f"denoising: random crops of {recipe.min_crop}-{recipe.max_tokens - 2} tokens, "
                           f"{recipe.mask_ratio:.0%} of them masked in Poisson({recipe.mean_span:g}) spans (one "
                           "<mask> per token); the decoder reconstructs the crop"),
        "recipe": asdict(recipe),
        "parameters": sum(p.numel() for p in model.parameters()),
        "corpus": {"function": "bench.data.generated_text.pretraining_corpus", "texts": recipe.corpus_texts,
                   "seed": CORPUS_SEED, "held_out_texts": HELD_OUT_TEXTS, "held_out_seed": HELD_OUT_SEED},
        "tokenizer": special_token_summary(tokenizer),
        "optimizer": "AdamW (eps 1e-8; weight decay on matrices and embeddings, not on biases or norms), "
                     "linear warm-up then linear decay to 0, gradient clipping 1.0",
        "steps": recipe.steps,
        "final_train_loss": round(float(np.mean(losses[-50:])), 4),
        "held_out_loss": {"pretrained": round(pretrained_held, 4), "random_init": round(random_held, 4),
                          "unit": "mean token cross-entropy (nats) of the pre-training objective on the held-out "
                                  "corpus; random_init = the same model before training"},
        "task_text_loss": {"text": probe_name, "pretrained": round(pretrained_probe, 4),
                           "random_init": round(random_probe, 4)},
        "train_seconds": round(seconds, 1),
        "total_seconds": round(time.time() - started, 1),
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "safetensors": safetensors.__version__,
                     "numpy": np.__version__},
        "sha256": {name: sha256(staging / name) for name in WEIGHT_FILES},
        "command": "python scripts/pretrain_mini_lms.py " + " ".join(sys.argv[1:]),
    }
    (staging / "training.json").write_text(json.dumps(meta, indent=1) + "\n")
    staging.chmod(0o755)  # mkdtemp makes it private
    for path in staging.iterdir():
        path.chmod(0o644)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(staging, out)
    return meta


def special_token_summary(tokenizer: Any) -> dict[str, Any]:
    """The special tokens with their ids, and what encoding a text adds around it ('$A' = the text)."""
    text = tokenizer("a b")["input_ids"]
    plain = tokenizer("a b", add_special_tokens=False)["input_ids"]
    start = next(i for i in range(len(text)) if text[i:i + len(plain)] == plain)
    template = [*tokenizer.convert_ids_to_tokens(text[:start]), "$A",
                *tokenizer.convert_ids_to_tokens(text[start + len(plain):])]
    return {
        "class": "PreTrainedTokenizerFast (byte-level BPE, tokenizers library)",
        "vocab_size": len(tokenizer),
        "special_tokens": {name: {"token": str(getattr(tokenizer, name)), "id": getattr(tokenizer, f"{name}_id")}
                           for name in ("bos_token", "eos_token", "unk_token", "pad_token", "mask_token")
                           if getattr(tokenizer, name, None) is not None},
        "encoding_template": " ".join(template),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(RECIPES), default=sorted(RECIPES, reverse=True))
    parser.add_argument("--threads", type=int, default=2, help="fixed, so the weights are reproducible")
    parser.add_argument("--out", type=Path, default=ASSETS, help="folder that receives mini_<model>/")
    parser.add_argument("--check", action="store_true", help="retrain in a temp folder and compare with --out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    failures = 0
    for kind in args.models:
        shipped = args.out / f"mini_{kind}"
        if not args.check:
            meta = pretrain(RECIPES[kind], shipped)
            sizes = {p.name: p.stat().st_size for p in shipped.iterdir()}
            print(f"wrote {shipped} ({sum(sizes.values()) / 1024:.0f} KiB; model.safetensors "
                  f"{sizes['model.safetensors'] / 1024:.0f} KiB, sha256 {meta['sha256']['model.safetensors'][:16]}...)")
            continue
        recorded = json.loads((shipped / "training.json").read_text())
        with tempfile.TemporaryDirectory() as scratch:
            meta = pretrain(RECIPES[kind], Path(scratch) / f"mini_{kind}")
            failures += not check_against(kind, meta, recorded, shipped, Path(scratch) / f"mini_{kind}")
    return 1 if failures else 0


def losses_of(meta: dict[str, Any]) -> dict[str, float]:
    return {"final training": meta["final_train_loss"], "held-out": meta["held_out_loss"]["pretrained"],
            "task text": meta["task_text_loss"]["pretrained"]}


def check_against(kind: str, meta: dict[str, Any], recorded: dict[str, Any], shipped: Path, retrained: Path) -> bool:
    """Tokenizer byte for byte; weights byte for byte, else the same losses (another CPU's kernels)."""
    from safetensors.torch import load_file

    ok = True
    for name in WEIGHT_FILES:
        same = meta["sha256"][name] == recorded["sha256"][name] == sha256(shipped / name)
        print(f"{kind} {name}: sha256 {meta['sha256'][name][:16]}... "
              f"{'identical to' if same else 'DIFFERENT from'} the shipped file")
        if same:
            continue
        if name != "model.safetensors":
            ok = False
            continue
        old, new = load_file(shipped / name), load_file(retrained / name)
        largest = max(float((old[k] - new[k]).abs().max()) for k in old) if set(old) == set(new) else float("inf")
        moved = {what: (value, losses_of(meta)[what]) for what, value in losses_of(recorded).items()}
        close = all(abs(a - b) <= LOSS_TOLERANCE for a, b in moved.values())
        ok &= close
        print(f"{kind} weights: largest difference {largest:.2g}; losses shipped / retrained: "
              + ", ".join(f"{what} {a:.4f} / {b:.4f}" for what, (a, b) in moved.items())
              + (f" -> the same training on other kernels (within {LOSS_TOLERANCE} nats)" if close
                 else f" -> NOT the same training (a loss moved by more than {LOSS_TOLERANCE} nats)"))
    return ok


if __name__ == "__main__":
    raise SystemExit(main())
