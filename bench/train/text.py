"""The language modality: a frozen GPT-2 / BART + a method, AdamW with a linear schedule per step and gradient
clipping, then beam search and the task's official metric suite.

The protocol follows the paper's code: AdamW (eps 1e-8), linear decay per step after `warmup_steps`, gradient
clipping, the model after the last epoch (or, for XSUM, the epoch with the best validation score). Decoder-only
sequences are ` source <bos> target <eos>` (the leading space as in Li & Liang's ' {src} {bos} ') with the loss
on the target and <eos> only (Li & Liang's data-to-text format); encoder-decoder inputs are the source and the
target. Per-example outputs and metric statistics go to `outputs.jsonl`, so significance tests never decode again.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bench.data.subsets import smoke_subset, subset_fingerprint
from bench.data.text import TextItem, TextSplit, read_text_split
from bench.data.tokenized import TokenizedPairs, tokenized
from bench.errors import BenchError
from bench.method import Method
from bench.spec import TextTaskSpec
from bench.store import OUTPUTS, atomic_write_bytes
from bench.train.config import RunConfig, RunOptions
from bench.train.device import autocast
from bench.train.modality import Evaluation, Modality, StepResult
from bench.train.model import PeftModel

Example = tuple[list[int], list[int]]


class TextBatcher:
    """Tokenises pairs and yields padded batches for training and prompts for decoding."""

    def __init__(self, backbone: Any, task: TextTaskSpec) -> None:
        self.task = task
        self.tokenizer = backbone.tokenizer
        self.decoder_only = backbone.decoder_only
        # protocol.format 'official' (GPT-2): Li & Liang's ' {src} {bos} ' + tgt + ' {eos}', a space before each
        # special token; 'clean' has none.
        self.official = task.protocol.format == "official"
        self.space = " " if self.official else ""

    def _encode(self, text: str, limit: int, special: bool) -> list[int]:
        ids: list[int] = self.tokenizer(text, add_special_tokens=special, truncation=True,
                                        max_length=limit)["input_ids"]
        return ids

    def training_examples(self, pairs: list[tuple[str, str]]) -> list[Example]:
        """(input ids, label ids) per pair; decoder-only: labels are -100 on the source and <bos>."""
        protocol = self.task.protocol
        out = []
        for source, target in pairs:
            if self.decoder_only:
                src = self._encode(" " + source + self.space, protocol.max_source_tokens, special=False)
                tgt = self._encode(" " + target + self.space, protocol.max_target_tokens, special=False)
                bos, eos = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
                out.append(([*src, bos, *tgt, eos], [-100] * (len(src) + 1) + [*tgt, eos]))
            else:
                src = self._encode(source, protocol.max_source_tokens, special=True)
                tgt = self._encode(target, protocol.max_target_tokens, special=True)
                out.append((src, tgt))
        return out

    @property
    def encode_version(self) -> str:
        """Names every setting `training_examples` reads, so the token cache is keyed by them."""
        protocol = self.task.protocol
        layout = "decoder-only" if self.decoder_only else "encoder-decoder"
        official = ":official" if self.official else ""
        return f"{layout}{official}:src{protocol.max_source_tokens}:tgt{protocol.max_target_tokens}:v1"

    def tokenized(self, split: TextSplit, options: RunOptions) -> TokenizedPairs:
        """The split's training pairs encoded once per machine (bench.data.tokenized), not at every run."""
        return tokenized(split.fingerprint, self.tokenizer, lambda pair: self.training_examples([pair])[0],
                         split.pairs, encode_version=self.encode_version, cache_dir=options.cache_dir,
                         progress=options.progress)

    def batches(self, examples: TokenizedPairs, batch_size: int, generator: torch.Generator,
                device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
        """Shuffled padded batches; pinned host memory on CUDA, so the copies do not block the step."""
        order = torch.randperm(len(examples), generator=generator).tolist()
        pad = self.tokenizer.pad_token_id
        pin = device.type == "cuda"
        for start in range(0, len(order), batch_size):
            arrays = examples.padded(order[start:start + batch_size], pad)
            tensors = [torch.from_numpy(a) for a in arrays]
            if pin:
                tensors = [t.pin_memory() for t in tensors]
            ids, mask, labels = (t.to(device, non_blocking=pin) for t in tensors)
            yield {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def loss(self, net: Any, batch: dict[str, torch.Tensor], precision: str) -> torch.Tensor:
        """Token NLL: averaged over target tokens (token_mean) or summed per sequence, then averaged
        over sequences (sequence_sum, Li & Liang's objective_mode 1)."""
        labels = batch["labels"]
        device = labels.device
        with autocast(device, precision):
            if self.decoder_only:
                logits = net(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                logits, labels = logits[:, :-1], labels[:, 1:]
            else:
                from transformers.models.bart.modeling_bart import shift_tokens_right

                config: Any = _model_config(net)
                decoder_input = shift_tokens_right(labels.clamp(min=0).masked_fill(labels < 0, config.pad_token_id),
                                                   config.pad_token_id, config.decoder_start_token_id)
                logits = net(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             decoder_input_ids=decoder_input).logits
        nll = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="none")
        nll = nll.view(labels.shape)
        if self.task.protocol.loss == "sequence_sum":
            return nll.sum() / labels.shape[0]
        return nll.sum() / (labels != -100).sum().clamp(min=1)

    def decoding(self, model: PeftModel) -> dict[str, Any]:
        """The effective decoding settings: the task's generation spec with what it leaves to the model config
        resolved (early_stopping None; the legacy search's config-level defaults). Stored in each record."""
        from bench.generation import legacy_generation_defaults

        settings = self.task.protocol.generation
        hf = model.backbone.model
        defaults = legacy_generation_defaults(hf)
        out: dict[str, Any] = {
            "beam_scoring": settings.beam_scoring, "num_beams": settings.num_beams,
            "max_new_tokens": settings.max_new_tokens, "length_penalty": settings.length_penalty,
            "early_stopping": (defaults["early_stopping"] if settings.early_stopping is None
                               else settings.early_stopping),
            "format": self.task.protocol.format,
        }
        if settings.beam_scoring == "legacy":
            out.update({"min_length": settings.min_length, "min_new_tokens": settings.min_new_tokens,
                        "no_repeat_ngram_size": settings.no_repeat_ngram_size or defaults["no_repeat_ngram_size"],
                        **{k: defaults[k] for k in ("eos_token_id", "pad_token_id", "decoder_start_token_id",
                                                      "forced_bos_token_id", "forced_eos_token_id")},
                        # what 3.2 banned when the spec bans nothing (the model config's bad_words_ids)
                        "config_bad_words_ids": defaults["bad_words_ids"]})
        else:
            out.update({"min_new_tokens": settings.min_new_tokens,
                        "no_repeat_ngram_size": settings.no_repeat_ngram_size})
        if settings.bad_words_ids is not None:
            out["bad_words_ids"] = settings.bad_words_ids
        else:
            out["ban_newlines"] = settings.ban_newlines
        config = getattr(hf, "generation_config", None)
        out["model_generation_config"] = config.to_diff_dict() if config is not None else None
        return out

    def _banned(self) -> list[list[int]] | None:
        settings = self.task.protocol.generation
        if settings.bad_words_ids is not None:
            return [list(ids) for ids in settings.bad_words_ids]
        return newline_token_ids(self.tokenizer) if settings.ban_newlines else None

    @torch.no_grad()
    def generate(self, model: PeftModel, items: list[TextItem], device: torch.device, precision: str,
                 progress: bool = False) -> list[str]:
        """Beam search with the task's settings (the installed transformers' generate, or transformers 3.2's
        search when generation.beam_scoring is legacy); one hypothesis per item, in item order."""
        from tqdm import tqdm

        model.eval()
        settings = self.task.protocol.generation
        decoding = self.decoding(model)
        tok = self.tokenizer
        pad = tok.pad_token_id
        banned = self._banned()
        hypotheses: list[str] = []
        limit = self.task.protocol.max_source_tokens
        for start in tqdm(range(0, len(items), settings.batch_size), desc="decode", disable=not progress,
                          leave=False):
            chunk = items[start:start + settings.batch_size]
            if self.decoder_only:
                prompts = [[*self._encode(" " + i.source + self.space, limit, special=False), tok.bos_token_id]
                           for i in chunk]
                width = max(len(p) for p in prompts)  # left padding: the prompts end where generation starts
                ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
                mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
                lengths = [len(p) for p in prompts]
            else:
                encoded = [self._encode(i.source, limit, special=True) for i in chunk]
                width = max(len(e) for e in encoded)
                ids = torch.tensor([e + [pad] * (width - len(e)) for e in encoded], device=device)
                mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in encoded], device=device)
                lengths = [1] * len(encoded)  # 3.2's lengths count BART's decoder start token
            with autocast(device, precision):
                if settings.beam_scoring == "legacy":
                    rows = self._legacy(model, ids, mask, lengths, decoding, banned)
                else:
                    rows = self._current(model, ids, mask, decoding, banned)
            for row in rows:
                hypotheses.append(self._text(row))
        return hypotheses

    def _current(self, model: PeftModel, ids: torch.Tensor, mask: torch.Tensor, decoding: dict[str, Any],
                 banned: list[list[int]] | None) -> list[list[int]]:
        """The installed transformers' beam search; the generated tokens of each input."""
        tok = self.tokenizer
        extra: dict[str, Any] = {"bad_words_ids": banned} if banned else {}
        if decoding["no_repeat_ngram_size"]:
            extra["no_repeat_ngram_size"] = decoding["no_repeat_ngram_size"]
        out = model.backbone.model.generate(
            input_ids=ids, attention_mask=mask, num_beams=decoding["num_beams"], do_sample=False,
            max_new_tokens=decoding["max_new_tokens"], min_new_tokens=decoding["min_new_tokens"],
            length_penalty=decoding["length_penalty"], early_stopping=decoding["early_stopping"],
            pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **extra)
        new_tokens = out[:, ids.shape[1]:] if self.decoder_only else out
        rows: list[list[int]] = new_tokens.tolist()
        if self.decoder_only:
            rows = [row[:row.index(tok.eos_token_id)] if tok.eos_token_id in row else row for row in rows]
        return rows

    def _legacy(self, model: PeftModel, ids: torch.Tensor, mask: torch.Tensor, lengths: list[int],
                decoding: dict[str, Any], banned: list[list[int]] | None) -> list[list[int]]:
        """transformers 3.2's beam search: lengths count the prompt (or BART's decoder start token)."""
        from bench.generation import legacy_beam_search

        min_length: int | list[int] = (decoding["min_length"] if decoding["min_length"] is not None
                                       else [n + decoding["min_new_tokens"] for n in lengths])
        return legacy_beam_search(
            model.backbone.model, ids, mask, num_beams=decoding["num_beams"],
            max_length=[n + decoding["max_new_tokens"] for n in lengths], min_length=min_length,
            length_penalty=decoding["length_penalty"], early_stopping=decoding["early_stopping"],
            eos_token_id=decoding["eos_token_id"], pad_token_id=decoding["pad_token_id"],
            bad_words_ids=banned if banned is not None else decoding["config_bad_words_ids"],
            no_repeat_ngram_size=decoding["no_repeat_ngram_size"],
            decoder_start_token_id=decoding["decoder_start_token_id"],
            forced_bos_token_id=decoding["forced_bos_token_id"], forced_eos_token_id=decoding["forced_eos_token_id"])

    def _text(self, tokens: list[int]) -> str:
        """A hypothesis's text; the official format decodes as run_generation.py did ('Error' when empty)."""
        if not self.official:
            return str(self.tokenizer.decode(tokens, skip_special_tokens=True).strip())
        text = str(self.tokenizer.decode(tokens, skip_special_tokens=True, clean_up_tokenization_spaces=True)).strip()
        return text or "Error"


def _model_config(net: Any) -> Any:
    model = getattr(net, "_orig_mod", net)  # torch.compile's wrapper keeps the module as _orig_mod
    return model.backbone.model.config


def newline_token_ids(tokenizer: Any) -> list[list[int]]:
    """Every vocabulary entry that decodes to text containing a newline (GPT-2: 198 '\\n', 628 '\\n\\n', ...)."""
    banned = [[i] for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])]
    return banned or [[tokenizer.eos_token_id]]


def linear_schedule(step: int, warmup: int, total: int) -> float:
    """transformers' get_linear_schedule_with_warmup, as a multiplier of the peak lr."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def score_split(task: TextTaskSpec, split: TextSplit, hypotheses: list[str], limit: int | None = None) -> Any:
    from bench.metrics import score

    items = split.items[:limit] if limit else split.items
    groups = [i.category for i in items] if any(i.category for i in items) else None
    return score(task.metric, hypotheses, [list(i.references) for i in items], groups,
                 **task.metric_options.model_dump())


def limited_split(split: TextSplit, limit: int) -> TextSplit:
    """At most `limit` items of an evaluation split (--limit; bench.data.subsets.smoke_subset), with their pairs."""
    if len(split.items) <= limit:
        return split
    import dataclasses

    kept = smoke_subset(len(split.items), limit)
    items = [split.items[i] for i in kept.tolist()]
    sources = {item.source for item in items}
    digest = subset_fingerprint(split.fingerprint, f"limit {limit}", kept)
    return dataclasses.replace(split, name=f"{split.name}[limit {limit}]", items=items,
                               pairs=[pair for pair in split.pairs if pair[0] in sources], fingerprint=digest)


@dataclass
class TextData:
    batcher: TextBatcher
    examples: TokenizedPairs
    eval_split: TextSplit
    select_split: TextSplit | None


class TextModality(Modality):
    name = "language"
    variants: ClassVar[dict[str, str]] = {"--train-examples": "a nested seeded subset of N training pairs"}

    def __init__(self) -> None:
        self.backbones: dict[str, Any] = {}

    def _pristine(self, task: TextTaskSpec) -> Any:
        from bench.backbones import build_backbone

        key = task.backbone.model_dump_json()
        if key not in self.backbones:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                self.backbones[key] = build_backbone(task.backbone)
        return self.backbones[key]

    # -- data ---------------------------------------------------------------------------------------------------
    def data_status(self, task: Any) -> Any:
        from bench.data.text import check_text_task

        return check_text_task(task)

    def split_sizes(self, task: Any) -> dict[str, int | None]:
        from bench.errors import BenchError

        sizes: dict[str, int | None] = {}
        root = task.data.resolved_root()
        for split, name in task.data.splits.items():
            if not task.data.prepare and not (root / name).is_file():
                sizes[split] = None  # planning never reads the hub copy (a run does, on first use)
                continue
            try:
                sizes[split] = len(read_text_split(task.data, split, task.name).pairs)
            except BenchError:
                sizes[split] = None
        return sizes

    def protocol_summary(self, task: Any) -> str:
        """Training format, backbone mode, decoding and the metric variants that differ from the clean ones."""
        from bench.spec import MetricOptions

        protocol, generation = task.protocol, task.protocol.generation
        parts = [f"format {protocol.format}", f"backbone {protocol.backbone_mode} mode",
                 f"beam search {generation.beam_scoring} ({generation.num_beams} beams, early_stopping "
                 f"{generation.early_stopping})"]
        if generation.min_length is not None:
            parts.append(f"min_length {generation.min_length} (counting the prompt)")
        if generation.bad_words_ids is not None:
            parts.append(f"bad_words_ids {generation.bad_words_ids}")
        default = MetricOptions().model_dump()
        changed = {k: v for k, v in task.metric_options.model_dump().items() if default[k] != v}
        parts.append("metrics " + (", ".join(f"{k}={v}" for k, v in changed.items()) if changed
                                   else "clean variants"))
        return "; ".join(parts)

    def fingerprints(self, task: Any, splits: list[str], options: RunOptions) -> dict[str, str]:
        return {name: read_text_split(task.data, name, task.name).fingerprint for name in splits}

    def prepare(self, config: RunConfig, run_dir: Path, options: RunOptions) -> TextData:
        task = config.task
        assert isinstance(task, TextTaskSpec)
        protocol = task.protocol
        batcher = TextBatcher(self._pristine(task), task)
        examples = TokenizedPairs.concat([batcher.tokenized(read_text_split(task.data, s, task.name), options)
                                          for s in config.train_splits])
        if config.train_examples:
            # Low-data settings (Li & Liang): N pairs in one seeded order, so smaller subsets nest in larger ones.
            order = np.random.default_rng([config.seed, 7919]).permutation(len(examples))
            examples = examples.take(sorted(order[: config.train_examples].tolist()))
        select = None
        if protocol.select_checkpoint == "best_val":
            select = read_text_split(task.data, protocol.select_split, task.name)
        evaluated = read_text_split(task.data, config.eval_split, task.name)
        limit = config.smoke.limit if config.smoke is not None else None
        if limit is not None:
            # --limit after --train-examples: at most N training pairs, N evaluation items, N selection items.
            if len(examples) > limit:
                examples = examples.take(smoke_subset(len(examples), limit))
            evaluated = limited_split(evaluated, limit)
            select = limited_split(select, limit) if select is not None else None
        return TextData(batcher, examples, evaluated, select)

    def optim_settings(self, task: Any, method: str, settings: Any, point: dict[str, Any]) -> dict[str, Any]:
        if settings.optimizer != "adamw":
            raise BenchError(f"method '{method}' asks for the {settings.optimizer} optimizer; language tasks train "
                             "with AdamW and a linear schedule (the paper's protocol).",
                             field=f"protocol.methods.{method}.optimizer", hint="Set optimizer: adamw for this task.")
        protocol = task.protocol
        return {"optimizer": "adamw", "base_lr": float(point["base_lr"]),
                "weight_decay": float(point["weight_decay"]), "epochs": settings.epochs,
                "warmup_steps": protocol.warmup_steps, "batch_size": settings.batch_size,
                "adam_eps": protocol.adam_eps, "grad_clip": protocol.grad_clip, "loss": protocol.loss,
                "select_checkpoint": protocol.select_checkpoint}

    def data_summary(self, data: TextData) -> dict[str, Any]:
        return {"train_examples": len(data.examples), "eval_examples": len(data.eval_split.items)}

    # -- model --------------------------------------------------------------------------------------------------
    def pristine_backbone(self, task: Any) -> Any:
        return copy.deepcopy(self._pristine(task))

    def build_model(self, config: RunConfig, method: Method, backbone: Any) -> PeftModel:
        model = PeftModel(backbone, method)
        # protocol.backbone_mode 'train': the frozen backbone's dropout stays on while training (official XSum).
        model.backbone_dropout = getattr(config.task.protocol, "backbone_mode", "eval") == "train"
        return model

    def optimizer(self, model: PeftModel, optim: dict[str, Any]) -> torch.optim.Optimizer:
        trainable = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in trainable if p.dim() >= 2]
        no_decay = [p for p in trainable if p.dim() < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": optim["weight_decay"]},
                                  {"params": no_decay, "weight_decay": 0.0}],
                                 lr=optim["base_lr"], eps=optim["adam_eps"])

    def learning_rate(self, optim: dict[str, Any], epoch: int, step: int, steps_per_epoch: int) -> float:
        """Linear decay per step after `warmup_steps` (transformers' linear schedule)."""
        total = steps_per_epoch * optim["epochs"]
        return float(optim["base_lr"] * linear_schedule(step, optim["warmup_steps"], total))

    def steps_per_epoch(self, data: TextData, optim: dict[str, Any]) -> int:
        return -(-len(data.examples) // optim["batch_size"])

    # -- steps and evaluation -----------------------------------------------------------------------------------
    def batches(self, data: TextData, optim: dict[str, Any], generator: torch.Generator, device: torch.device
                ) -> Iterator[Any]:
        return data.batcher.batches(data.examples, optim["batch_size"], generator, device)

    def step(self, net: Any, data: TextData, batch: Any, precision: str, device: torch.device) -> StepResult:
        loss = data.batcher.loss(net, batch, precision)
        return StepResult(loss, len(batch["labels"]), {"tokens": (batch["labels"] != -100).sum()})

    def epoch_entry(self, epoch: int, lr: float, sums: dict[str, float], examples: int) -> dict[str, Any]:
        return {"epoch": epoch, "lr_end": lr, "train_loss": sums["loss"] / max(1, examples)}

    def keeps_best_epoch(self, config: RunConfig) -> bool:
        return bool(getattr(config.task.protocol, "select_checkpoint", "last") == "best_val")

    def periodic_evaluation(self, net: Any, data: TextData, config: RunConfig, epoch: int, last: bool,
                            options: RunOptions) -> Evaluation | None:
        task = config.task
        assert isinstance(task, TextTaskSpec)
        protocol = task.protocol
        if data.select_split is None:
            return None
        limit = protocol.select_examples
        items = data.select_split.items[:limit] if limit else data.select_split.items
        hypotheses = data.batcher.generate(_model(net), items, options.torch_device(), options.precision)
        value = score_split(task, data.select_split, hypotheses, limit).scores.get(task.primary_metric)
        return Evaluation({f"{protocol.select_split}_{task.primary_metric}": value}, value)

    def final_evaluation(self, net: Any, data: TextData, config: RunConfig, run_dir: Path, options: RunOptions,
                         chosen_epoch: int) -> dict[str, Any]:
        task = config.task
        assert isinstance(task, TextTaskSpec)
        hypotheses = data.batcher.generate(_model(net), data.eval_split.items, options.torch_device(),
                                           options.precision, options.progress)
        report = score_split(task, data.eval_split, hypotheses)
        if task.primary_metric not in report.scores:
            raise RuntimeError(f"metric suite {task.metric} did not produce {task.primary_metric}")
        write_outputs(run_dir / OUTPUTS, data.eval_split, hypotheses, report.per_item)
        return {"split": config.eval_split, "metric": task.metric, "primary": task.primary_metric,
                "epoch": chosen_epoch, "selected_by": task.protocol.select_checkpoint, **report.scores,
                "unavailable": report.unavailable, "convention": report.convention,
                "decoding": data.batcher.decoding(_model(net))}

    def failed_metrics(self, config: RunConfig) -> dict[str, Any]:
        task = config.task
        return {"split": config.eval_split, "metric": task.metric, "primary": task.primary_metric,
                task.primary_metric: None}

    def throughput(self, sums: dict[str, float], train_seconds: float, examples: int) -> dict[str, Any]:
        return {"train_tokens_per_s": sums.get("tokens", 0.0) / train_seconds if train_seconds else None}


def _model(net: Any) -> PeftModel:
    model: PeftModel = getattr(net, "_orig_mod", net)
    return model


def write_outputs(path: Path, split: TextSplit, hypotheses: list[str], per_item: dict[str, Any]) -> None:
    lines = []
    for index, (item, hypothesis) in enumerate(zip(split.items, hypotheses, strict=True)):
        row: dict[str, Any] = {"index": index, "id": item.item_id, "category": item.category,
                               "source": item.source, "hypothesis": hypothesis}
        row["stats"] = {name: values[index] for name, values in per_item.items() if len(values) == len(hypotheses)}
        lines.append(json.dumps(row, ensure_ascii=False))
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
