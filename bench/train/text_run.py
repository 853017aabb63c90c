"""One language run: a frozen GPT-2 / BART + a method, trained with AdamW and a linear schedule, then decoded
with beam search and scored with the task's official metric suite.

The protocol follows the paper's code (reference §3.3): AdamW (eps 1e-8), linear decay per step after
`warmup_steps`, gradient clipping, the model after the last epoch (or, for XSUM, the epoch with the best
validation score). Decoder-only sequences are ` source <bos> target <eos>` (the leading space as in Li & Liang's
' {src} {bos} ') with the loss on the target and
<eos> only (Li & Liang's data-to-text format); encoder-decoder inputs are the source and the target.
Per-example outputs and per-example metric statistics go to `outputs.jsonl` beside the record, so
significance tests can be computed later without decoding again.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.backbones.language import LanguageBackbone, build_language_backbone
from bench.data.text import TextItem, TextSplit, read_text_split
from bench.method import Method
from bench.ops import faults
from bench.spec import TextTaskSpec
from bench.store import CHECKPOINT, OUTPUTS, TRAINED, atomic_write_bytes
from bench.train.language_model import LanguagePeftModel

log = logging.getLogger("bench.text_run")


# ---------------------------------------------------------------- batching


class TextBatcher:
    """Tokenises a split once and yields padded batches for training and prompts for decoding."""

    def __init__(self, backbone: LanguageBackbone, task: TextTaskSpec) -> None:
        self.backbone, self.task = backbone, task
        self.tokenizer = backbone.tokenizer
        self.decoder_only = backbone.kind == "gpt2"

    def _encode(self, text: str, limit: int, special: bool) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=special, truncation=True,
                                        max_length=limit)["input_ids"]
        return ids

    def training_examples(self, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """(input ids, label ids) per pair; decoder-only: labels are -100 on the source and <bos>."""
        protocol = self.task.protocol
        out = []
        for source, target in pairs:
            if self.decoder_only:
                src = self._encode(" " + source, protocol.max_source_tokens, special=False)
                tgt = self._encode(" " + target, protocol.max_target_tokens, special=False)
                bos, eos = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
                ids = [*src, bos, *tgt, eos]
                labels = [-100] * (len(src) + 1) + [*tgt, eos]
                out.append((ids, labels))
            else:
                src = self._encode(source, protocol.max_source_tokens, special=True)
                tgt = self._encode(target, protocol.max_target_tokens, special=True)
                out.append((src, tgt))
        return out

    def batches(self, examples: list[tuple[list[int], list[int]]], batch_size: int, generator: torch.Generator,
                device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
        order = torch.randperm(len(examples), generator=generator).tolist()
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), batch_size):
            chunk = [examples[i] for i in order[start:start + batch_size]]
            if self.decoder_only:
                width = max(len(ids) for ids, _ in chunk)
                ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in chunk])
                labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in chunk])
                mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in chunk])
                yield {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}
            else:
                src_width = max(len(x) for x, _ in chunk)
                tgt_width = max(len(y) for _, y in chunk)
                ids = torch.tensor([x + [pad] * (src_width - len(x)) for x, _ in chunk])
                mask = torch.tensor([[1] * len(x) + [0] * (src_width - len(x)) for x, _ in chunk])
                labels = torch.tensor([y + [-100] * (tgt_width - len(y)) for _, y in chunk])
                yield {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}

    def loss(self, model: LanguagePeftModel, batch: dict[str, torch.Tensor], autocast: bool) -> torch.Tensor:
        """Token NLL: averaged over target tokens (token_mean) or summed per sequence, then averaged
        over sequences (sequence_sum, Li & Liang's objective_mode 1)."""
        labels = batch["labels"]
        device = labels.device
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            if self.decoder_only:
                logits = model.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                logits, labels = logits[:, :-1], labels[:, 1:]
            else:
                from transformers.models.bart.modeling_bart import shift_tokens_right

                config: Any = model.backbone.model.config
                decoder_input = shift_tokens_right(labels.clamp(min=0).masked_fill(labels < 0, config.pad_token_id),
                                                   config.pad_token_id, config.decoder_start_token_id)
                logits = model.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                        decoder_input_ids=decoder_input).logits
        nll = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="none")
        nll = nll.view(labels.shape)
        if self.task.protocol.loss == "sequence_sum":
            return nll.sum() / labels.shape[0]
        return nll.sum() / (labels != -100).sum().clamp(min=1)

    @torch.no_grad()
    def generate(self, model: LanguagePeftModel, items: list[TextItem], device: torch.device, autocast: bool,
                 progress: bool = False) -> list[str]:
        """Beam search with the task's settings; one hypothesis per item, in item order."""
        from tqdm import tqdm

        model.eval()
        settings = self.task.protocol.generation
        tok = self.tokenizer
        pad = tok.pad_token_id
        extra: dict[str, Any] = {}
        if settings.ban_newlines:
            extra["bad_words_ids"] = newline_token_ids(tok)
        if settings.no_repeat_ngram_size:
            extra["no_repeat_ngram_size"] = settings.no_repeat_ngram_size
        hypotheses: list[str] = []
        limit = self.task.protocol.max_source_tokens
        for start in tqdm(range(0, len(items), settings.batch_size), desc="decode", disable=not progress,
                          leave=False):
            chunk = items[start:start + settings.batch_size]
            if self.decoder_only:
                prompts = [[*self._encode(" " + i.source, limit, special=False), tok.bos_token_id] for i in chunk]
                width = max(len(p) for p in prompts)  # left padding: the prompts end where generation starts
                ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
                mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
            else:
                encoded = [self._encode(i.source, limit, special=True) for i in chunk]
                width = max(len(e) for e in encoded)
                ids = torch.tensor([e + [pad] * (width - len(e)) for e in encoded], device=device)
                mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in encoded], device=device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                out = model.backbone.model.generate(
                    input_ids=ids, attention_mask=mask, num_beams=settings.num_beams, do_sample=False,
                    max_new_tokens=settings.max_new_tokens, min_new_tokens=settings.min_new_tokens,
                    length_penalty=settings.length_penalty, early_stopping=True, pad_token_id=pad,
                    eos_token_id=tok.eos_token_id, **extra)
            new_tokens = out[:, ids.shape[1]:] if self.decoder_only else out
            for row in new_tokens.tolist():
                if self.decoder_only and tok.eos_token_id in row:
                    row = row[:row.index(tok.eos_token_id)]
                hypotheses.append(tok.decode(row, skip_special_tokens=True).strip())
        return hypotheses


def newline_token_ids(tokenizer: Any) -> list[list[int]]:
    """Every vocabulary entry that decodes to text containing a newline (GPT-2: 198 '\\n', 628 '\\n\\n', ...)."""
    banned = [[i] for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])]
    return banned or [[tokenizer.eos_token_id]]


# ---------------------------------------------------------------- the run


def linear_schedule(step: int, warmup: int, total: int) -> float:
    """transformers' get_linear_schedule_with_warmup, as a multiplier of the peak lr."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def score_split(task: TextTaskSpec, split: TextSplit, hypotheses: list[str], limit: int | None = None
                ) -> Any:
    from bench.metrics import score

    items = split.items[:limit] if limit else split.items
    groups = [i.category for i in items] if any(i.category for i in items) else None
    return score(task.metric, hypotheses, [list(i.references) for i in items], groups)


def train_text_run(config: Any, method_cls: type[Method], identity: dict[str, Any], key: str, run_dir: Path,
                   options: Any, backbone: LanguageBackbone) -> dict[str, Any]:
    """Train, decode, score; returns the run record (the caller writes it)."""
    from tqdm import tqdm

    from bench.train.run import (
        SAVE_TRAINED_MAX,
        _reset_peak_memory,
        _seed_everything,
        build_record,
        load_torch,
        save_torch,
    )

    task: TextTaskSpec = config.task
    optim, device, protocol = config.optim, options.device, task.protocol
    started = time.time()
    train_pairs = [p for s in config.train_splits for p in read_text_split(task.data, s, task.name).pairs]
    if config.train_examples:
        # Low-data settings (Li & Liang): N pairs in one seeded order, so smaller subsets nest in larger ones.
        order = np.random.default_rng([config.seed, 7919]).permutation(len(train_pairs))
        kept = sorted(order[: config.train_examples].tolist())
        train_pairs = [train_pairs[i] for i in kept]
    eval_split = read_text_split(task.data, config.eval_split, task.name)
    _seed_everything(config.seed)
    method = method_cls(method_cls.parse_hparams(config.hparams))
    model = LanguagePeftModel(backbone, method).to(device)
    batcher = TextBatcher(backbone, task)
    examples = batcher.training_examples(train_pairs)
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": optim["weight_decay"]},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=optim["base_lr"], eps=protocol.adam_eps)
    batch_size, epochs = optim["batch_size"], optim["epochs"]
    steps_per_epoch = -(-len(examples) // batch_size)
    total_steps = steps_per_epoch * epochs
    autocast = options.precision == "bf16"

    history: list[dict[str, Any]] = []
    start_epoch, resumed_from, elapsed_before, step = 0, None, 0.0, 0
    best: dict[str, Any] | None = None
    checkpoint_path = run_dir / CHECKPOINT
    state = load_torch(checkpoint_path, device)
    if state is not None:
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        history, start_epoch, step = list(state["history"]), int(state["epoch"]) + 1, int(state["step"])
        best, resumed_from, elapsed_before = state["best"], start_epoch, float(state["elapsed"])
        log.info("resuming %s at epoch %d", config.describe(), start_epoch)

    select_split = None
    if protocol.select_checkpoint == "best_val":
        select_split = read_text_split(task.data, protocol.select_split, task.name)
    status = "completed"
    train_seconds, train_tokens = 0.0, 0
    _reset_peak_memory(device)
    for epoch in tqdm(range(start_epoch, epochs), desc=config.describe()[:60], disable=not options.progress,
                      leave=False, initial=start_epoch, total=epochs, unit="epoch"):
        model.train()
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        tick, loss_sum, seen = time.time(), 0.0, 0
        for batch in batcher.batches(examples, batch_size, generator, device):
            for group in optimizer.param_groups:
                group["lr"] = optim["base_lr"] * linear_schedule(step, optim["warmup_steps"], total_steps)
            loss = batcher.loss(model, batch, autocast)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if protocol.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(trainable, protocol.grad_clip)
            optimizer.step()
            faults.point("train_step")
            step += 1
            loss_sum += float(loss.detach()) * len(batch["labels"])
            seen += len(batch["labels"])
            train_tokens += int((batch["labels"] != -100).sum())
        train_seconds += time.time() - tick
        mean_loss = loss_sum / max(1, seen)
        entry: dict[str, Any] = {"epoch": epoch, "lr_end": optimizer.param_groups[0]["lr"], "train_loss": mean_loss}
        if not np.isfinite(mean_loss):
            entry["train_loss"] = None
            history.append(entry)
            status = "diverged"
            log.warning("diverged: %s (non-finite loss at epoch %d)", config.describe(), epoch)
            break
        if select_split is not None:
            items = select_split.items[:protocol.select_examples] if protocol.select_examples else select_split.items
            hyps = batcher.generate(model, items, device, autocast)
            report = score_split(task, select_split, hyps, protocol.select_examples)
            value = report.scores.get(task.primary_metric)
            entry[f"{protocol.select_split}_{task.primary_metric}"] = value
            if value is not None and (best is None or value > best["score"]):
                best = {"epoch": epoch, "score": value, "state": model.trainable_state()}
        history.append(entry)
        _save_checkpoint(checkpoint_path, model, optimizer, history, epoch, step, best,
                         elapsed_before + time.time() - started)

    metrics: dict[str, Any] = {"split": config.eval_split, "metric": task.metric, "primary": task.primary_metric}
    if status == "completed":
        chosen_epoch = epochs - 1
        if best is not None:
            model.load_state_dict(best["state"], strict=False)
            chosen_epoch = best["epoch"]
        hypotheses = batcher.generate(model, eval_split.items, device, autocast, options.progress)
        report = score_split(task, eval_split, hypotheses)
        metrics.update({"epoch": chosen_epoch, "selected_by": protocol.select_checkpoint, **report.scores,
                        "unavailable": report.unavailable, "convention": report.convention})
        if task.primary_metric not in report.scores:
            raise RuntimeError(f"metric suite {task.metric} did not produce {task.primary_metric}")
        _write_outputs(run_dir / OUTPUTS, eval_split, hypotheses, report.per_item)
        if config.stage == "final" and not method_cls.trains_backbone and model.method_trainable <= SAVE_TRAINED_MAX:
            save_torch(run_dir / TRAINED, model.trainable_state())  # the evaluated state, for analyses
    else:
        metrics[task.primary_metric] = None
        metrics["diverged_at_epoch"] = history[-1]["epoch"]
    cost = {"wall_s": elapsed_before + time.time() - started,
            "train_tokens_per_s": train_tokens / train_seconds if train_seconds else None}
    data = {"train_examples": len(examples), "eval_examples": len(eval_split.items)}
    return build_record(config, key, status, identity, metrics, history, model, 0, data, cost, options,
                        resumed_from)


def _write_outputs(path: Path, split: TextSplit, hypotheses: list[str], per_item: dict[str, Any]) -> None:
    lines = []
    for index, (item, hypothesis) in enumerate(zip(split.items, hypotheses, strict=True)):
        row: dict[str, Any] = {"index": index, "id": item.item_id, "category": item.category,
                               "source": item.source, "hypothesis": hypothesis}
        row["stats"] = {name: values[index] for name, values in per_item.items() if len(values) == len(hypotheses)}
        lines.append(json.dumps(row, ensure_ascii=False))
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def _save_checkpoint(path: Path, model: LanguagePeftModel, optimizer: torch.optim.Optimizer,
                     history: list[dict[str, Any]], epoch: int, step: int, best: dict[str, Any] | None,
                     elapsed: float) -> None:
    from bench.train.run import save_torch

    save_torch(path, {"model": model.trainable_state(), "optimizer": optimizer.state_dict(), "history": history,
                      "epoch": epoch, "step": step, "best": best, "elapsed": elapsed})


def build_backbone_for(task: TextTaskSpec, cache: dict[str, LanguageBackbone]) -> LanguageBackbone:
    """A pristine backbone per spec (deep-copied per run: methods attach hooks and full FT changes weights)."""
    key = task.backbone.model_dump_json()
    if key not in cache:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            cache[key] = build_language_backbone(task.backbone)
    return copy.deepcopy(cache[key])
