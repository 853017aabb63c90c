"""`bench perf language`: a training step and a beam-search decode of each method at a language task's real shapes
(GPT-2 medium for E2E, BART-large for XSum: random weights from the shipped config, no download), with the hours of
the task's whole protocol at the measured rates.

The training step is the run's own: the task's loss (`TextBatcher.loss`), AdamW over the trainable parameters,
gradient clipping, at the task's batch size and the method's task hyper-parameters. The decode is the installed
transformers' beam search with the task's beams and length penalty, forced to a fixed number of new tokens (random
weights would stop anywhere). Sequence lengths are measured from the data when it and the tokenizer are on this
machine, else the data sets' typical lengths below (or `--source-tokens` / `--target-tokens`). Methods are
measured one at a time on a clean device, each figure handed to `on_cost` as soon as it is there. A benchmark,
not a test.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.errors import BenchError
from bench.method import Method
from bench.perf.timing import PeakMemory, release, sync, timed

# (source, target) tokens of a typical training pair when the data is not here to measure: E2E tables hold about 5.4
# attributes (about 33 GPT-2 tokens in Li & Liang's "name : X | ..." form) and references about 20 words (Novikova
# et al., 2017); XSum articles average 431 words, cut at max_source_tokens, and summaries 23 words (Narayan et al.,
# 2018). Keyed by `data.source`.
TYPICAL_LENGTHS: dict[str, tuple[int, int]] = {"e2e": (33, 24), "xsum": (512, 30)}
SAMPLE_PAIRS = 512  # training pairs tokenised to measure lengths from the data


@dataclass(frozen=True)
class Shape:
    """The measured shapes: batch x (source + target) tokens for training; `decode_batch` inputs x `num_beams`
    beams for `new_tokens` steps for decoding. `lengths` says where the token counts came from."""

    batch: int
    source_tokens: int
    target_tokens: int
    decode_batch: int
    num_beams: int
    new_tokens: int
    lengths: str

    @property
    def tokens_per_example(self) -> int:
        return self.source_tokens + self.target_tokens


@dataclass(frozen=True)
class LanguageCost:
    method: str
    step_seconds: float
    decode_seconds: float
    shape: Shape
    peak_train_bytes: int | None = None
    peak_decode_bytes: int | None = None
    trainable: int = 0
    stored: int = 0
    setup_seconds: float = 0.0
    hparams: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None  # why this method could not be measured here

    @property
    def train_tokens_per_s(self) -> float:
        return self.shape.batch * self.shape.tokens_per_example / self.step_seconds

    @property
    def train_examples_per_s(self) -> float:
        return self.shape.batch / self.step_seconds

    @property
    def decode_items_per_s(self) -> float:
        return self.shape.decode_batch / self.decode_seconds

    @property
    def decode_tokens_per_s(self) -> float:
        """Generated tokens per second (per input, not per beam)."""
        return self.shape.decode_batch * self.shape.new_tokens / self.decode_seconds


@dataclass(frozen=True)
class LanguagePlan:
    label: str
    method: type[Method]
    hparams: dict[str, Any]
    batch: int


def plans(task: Any, method_classes: list[type[Method]], batch: int | None = None,
          overrides: dict[str, dict[str, Any]] | None = None) -> list[LanguagePlan]:
    """Each method as the task trains it: fixed hyper-parameters (the first grid point's where the grid searches
    one), the task's batch size unless `batch`; `overrides` (method -> {name: value}; None restores the method's
    default) changes a hyper-parameter for the measurement."""
    from bench.train.config import OPTIM_KEYS
    from bench.train.protocol import grid_points, method_settings

    out = []
    for cls in method_classes:
        settings = method_settings(task, cls)
        hparams = {k: v for k, v in grid_points(settings)[0].items() if k not in OPTIM_KEYS}
        for name, value in (overrides or {}).get(cls.name, {}).items():
            if value is None:
                hparams.pop(name, None)
            else:
                hparams[name] = value
        out.append(LanguagePlan(cls.name, cls, hparams, batch or settings.batch_size))
    return out


def choose_shape(task: Any, backbone: Any, batch: int, decode_batch: int | None, source_tokens: int | None,
                 target_tokens: int | None, prefix_positions: int = 0) -> Shape:
    """Token counts: given, else measured from the data (when it and the tokenizer are here), else typical; then
    capped at the protocol's maxima and at what the backbone's position table holds."""
    protocol = task.protocol
    generation = protocol.generation
    measured = None if source_tokens and target_tokens else lengths_from_data(task, backbone)
    typical = TYPICAL_LENGTHS.get(task.data.source)
    if source_tokens and target_tokens:
        origin = "given"
    elif measured is not None:
        origin = f"mean of {SAMPLE_PAIRS} training pairs"
    elif typical is not None:
        origin = f"typical {task.data.source} lengths (data not here)"
    else:
        raise BenchError(f"no typical sequence lengths are known for data source '{task.data.source}' and its "
                         "data is not on this machine.", field="--source-tokens",
                         hint="Give --source-tokens and --target-tokens.")
    base = measured or typical or (0, 0)
    source = min(source_tokens or base[0], protocol.max_source_tokens)
    target = min(target_tokens or base[1], protocol.max_target_tokens)
    limit = _positions(backbone)
    if limit is not None:
        room = limit - prefix_positions - 2 if backbone.decoder_only else limit
        if backbone.decoder_only and source + target > room:
            source = max(1, room - target)
            origin += f", source cut to {source} (the backbone holds {limit} positions)"
        elif not backbone.decoder_only and max(source, target) > room:
            source, target = min(source, room), min(target, room)
            origin += f", cut to the backbone's {limit} positions"
    new_tokens = min(target, generation.max_new_tokens)
    return Shape(batch, source, target, decode_batch or generation.batch_size, generation.num_beams, new_tokens,
                 origin)


def lengths_from_data(task: Any, backbone: Any) -> tuple[int, int] | None:
    """Mean (source, target) token counts of the first training pairs, when the training file and the tokenizer are
    on this machine (never the hub)."""
    from bench.data.text import read_text_split
    from bench.train.text import TextBatcher

    split = task.protocol.final_stage.train[0]
    here = task.data.prepare or (task.data.resolved_root() / task.data.splits[split]).is_file()
    if not backbone.tokenizer or not here:
        return None

    pairs = read_text_split(task.data, split, task.name).pairs[:SAMPLE_PAIRS]
    batcher = TextBatcher(backbone, task)
    examples = batcher.training_examples(pairs)
    if backbone.decoder_only:  # ids = source, <bos>, target, <eos>; labels cover target and <eos>
        targets = [sum(1 for label in labels if label != -100) - 1 for _, labels in examples]
        sources = [len(ids) - t - 2 for (ids, _), t in zip(examples, targets, strict=True)]
    else:
        sources, targets = [len(ids) for ids, _ in examples], [len(labels) for _, labels in examples]
    return round(statistics.mean(sources)), round(statistics.mean(targets))


def _positions(backbone: Any) -> int | None:
    config = backbone.model.config
    value = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    return int(value) if value else None


def measure(task: Any, entries: list[LanguagePlan], pristine: Any, shape_of: Callable[[LanguagePlan, int], Shape],
            steps: int, decodes: int, device: torch.device, precision: str, warmup: int = 1,
            on_cost: Callable[[LanguageCost], None] | None = None) -> list[LanguageCost]:
    """Each entry measured alone on a copy of `pristine` (the task's backbone, random weights)."""
    costs = []
    for entry in entries:
        release(device)
        try:
            cost = _measure_one(task, entry, pristine, shape_of, steps, decodes, device, precision, warmup)
        except BenchError as exc:
            cost = LanguageCost(entry.label, float("nan"), float("nan"), shape_of(entry, 0),
                                hparams=entry.hparams, skipped=exc.message)
        costs.append(cost)
        if on_cost is not None:
            on_cost(cost)
    release(device)
    return costs


def _measure_one(task: Any, entry: LanguagePlan, pristine: Any, shape_of: Callable[[LanguagePlan, int], Shape],
                 steps: int, decodes: int, device: torch.device, precision: str, warmup: int) -> LanguageCost:
    from bench.train.device import autocast
    from bench.train.model import PeftModel
    from bench.train.text import TextBatcher, TextModality

    cls = entry.method
    torch.manual_seed(0)
    sync(device)
    start = time.perf_counter()
    model = PeftModel(copy.deepcopy(pristine), cls(cls.parse_hparams(entry.hparams))).to(device).train()
    backbone = model.backbone
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = TextModality().optimizer(model, {"weight_decay": 0.0, "base_lr": 1e-6,
                                                 "adam_eps": task.protocol.adam_eps})
    sync(device)
    setup = time.perf_counter() - start
    positions = int(backbone.prefix_provider.positions(0)) if backbone.prefix_provider is not None else 0
    shape = shape_of(entry, positions)
    batcher = TextBatcher(backbone, task)
    batch = _training_batch(backbone, shape, device)
    clip = task.protocol.grad_clip
    train_peak, decode_peak = PeakMemory(device), PeakMemory(device)

    def step() -> None:
        loss = batcher.loss(model, batch, precision)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(trainable, clip)
        optimizer.step()

    for _ in range(warmup):
        train_peak(step)
    step_seconds = statistics.median(timed(lambda: train_peak(step), device) for _ in range(steps))
    optimizer.zero_grad(set_to_none=True)

    model.eval()
    prompt, mask = _decode_prompt(backbone, shape, device)
    generation = task.protocol.generation

    def decode() -> None:
        with torch.no_grad(), autocast(device, precision):
            backbone.model.generate(input_ids=prompt, attention_mask=mask, num_beams=shape.num_beams,
                                    do_sample=False, max_new_tokens=shape.new_tokens, min_new_tokens=shape.new_tokens,
                                    length_penalty=generation.length_penalty, early_stopping=False,
                                    no_repeat_ngram_size=generation.no_repeat_ngram_size or None,
                                    pad_token_id=_pad_id(backbone), eos_token_id=backbone.model.config.eos_token_id)

    for _ in range(min(warmup, 1)):
        decode_peak(decode)
    decode_seconds = statistics.median(timed(lambda: decode_peak(decode), device) for _ in range(decodes))
    return LanguageCost(entry.label, step_seconds, decode_seconds, shape, train_peak.bytes, decode_peak.bytes,
                        model.method_trainable, model.method_stored, setup, entry.hparams)


def _pad_id(backbone: Any) -> int:
    config = backbone.model.config
    pad = config.pad_token_id
    return int(pad if pad is not None else config.vocab_size - 1)  # GPT-2: the [PAD] row added at build


def _random_ids(backbone: Any, rows: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """Token ids that are none of the special tokens (ids 0..2 in BART, the last rows in GPT-2)."""
    vocab = int(backbone.model.config.vocab_size)
    return torch.randint(3, vocab - 2, (rows, length), generator=generator)


def _training_batch(backbone: Any, shape: Shape, device: torch.device) -> dict[str, torch.Tensor]:
    """A batch as TextBatcher lays it out: decoder-only ids = source <bos> target <eos>, labels on target and <eos>;
    encoder-decoder: source ids, target labels."""
    generator = torch.Generator().manual_seed(0)
    source = _random_ids(backbone, shape.batch, shape.source_tokens, generator)
    target = _random_ids(backbone, shape.batch, shape.target_tokens, generator)
    config = backbone.model.config
    if backbone.decoder_only:
        bos = torch.full((shape.batch, 1), int(config.bos_token_id))
        eos = torch.full((shape.batch, 1), int(config.eos_token_id))
        ids = torch.cat([source, bos, target, eos], dim=1)
        labels = torch.cat([torch.full((shape.batch, shape.source_tokens + 1), -100), target, eos], dim=1)
    else:
        ids, labels = source, target
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device), "labels": labels.to(device)}


def _decode_prompt(backbone: Any, shape: Shape, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder-only: source <bos> (generation continues the prompt); encoder-decoder: the source."""
    generator = torch.Generator().manual_seed(1)
    ids = _random_ids(backbone, shape.decode_batch, shape.source_tokens, generator)
    if backbone.decoder_only:
        ids = torch.cat([ids, torch.full((shape.decode_batch, 1), int(backbone.model.config.bos_token_id))], dim=1)
    return ids.to(device), torch.ones_like(ids).to(device)


# ---------------------------------------------------------------- reports, printed a row at a time

COLUMNS = (("method", 13, "<"), ("batch", 5, ">"), ("tokens", 9, ">"), ("ms/step", 9, ">"), ("train tok/s", 11, ">"),
           ("decode s", 9, ">"), ("decode tok/s", 12, ">"), ("peak MiB", 8, ">"), ("decode MiB", 10, ">"),
           ("trained", 12, ">"), ("stored", 11, ">"))


def _line(cells: list[str]) -> str:
    return "  ".join(f"{cell:{align}{width}}" for cell, (_, width, align) in zip(cells, COLUMNS, strict=True)).rstrip()


def report_header(task: Any, backbone_note: str, shape: Shape, device: torch.device, precision: str) -> str:
    generation = task.protocol.generation
    return (f"{task.name}: backbone {task.backbone.model} ({backbone_note}), {device} {precision}; training "
            f"batch x (source + target) tokens, lengths: {shape.lengths}; decode: {shape.decode_batch} inputs x "
            f"{shape.num_beams} beams, {shape.new_tokens} new tokens forced (length penalty "
            f"{generation.length_penalty}); each method measured alone\n"
            + _line([c[0] for c in COLUMNS]) + "\n" + _line(["-" * c[1] for c in COLUMNS]))


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.0f}"


def report_row(cost: LanguageCost) -> str:
    if cost.skipped is not None:
        return f"{cost.method:<13}  skipped: {cost.skipped}"
    shape = cost.shape
    return _line([cost.method, str(shape.batch), f"{shape.source_tokens}+{shape.target_tokens}",
                  f"{cost.step_seconds * 1000:.0f}", f"{cost.train_tokens_per_s:.0f}", f"{cost.decode_seconds:.2f}",
                  f"{cost.decode_tokens_per_s:.1f}", _mib(cost.peak_train_bytes), _mib(cost.peak_decode_bytes),
                  f"{cost.trainable:,}", f"{cost.stored:,}"])


def projection_line(method: str, projection: Any, measured_batch: int, protocol_batch: int) -> str:
    note = (f"; measured at batch {measured_batch}, the protocol's is {protocol_batch}"
            if measured_batch != protocol_batch else "")
    return (f"  {method:<13} {projection.hours:10.1f} h  ({projection.train_images / 1e6:.2f} M training pairs, "
            f"{projection.eval_images / 1e3:.1f} k inputs decoded, {projection.runs} runs, set-up "
            f"{projection.overhead_hours:.2f} h{note})")
