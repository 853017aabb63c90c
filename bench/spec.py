"""Typed schemas for task, suite and protocol specs, and YAML loading with errors that name file and field.

Specs are declarative and validated strictly: an unknown key is an error, never silently ignored.
This module must not import torch, so listing and validating specs stays fast.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bench.errors import BenchError, did_you_mean

GridValue = float | int | str | bool

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The paper's vision protocol (docs/parity.md): base-lr × weight-decay grid, final seeds.
PAPER_BASE_LRS: list[GridValue] = [50.0, 25.0, 10.0, 5.0, 2.5, 1.0, 0.5, 0.25, 0.1, 0.05]
PAPER_WEIGHT_DECAYS: list[GridValue] = [0.01, 0.001, 0.0001, 0.0]
PAPER_SEEDS = [42, 44, 82, 100, 800]


class StrictModel(BaseModel):
    """Base for all specs: unknown keys are errors and values are immutable after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageSpec(StrictModel):
    """How images are decoded once into the cache and turned into model inputs at each step."""

    resize: int | tuple[int, int] = Field(
        description="int: resize the shorter side (aspect kept, FGVC); [h, w]: resize exactly (VTAB)"
    )
    crop: int | None = Field(None, description="crop size; random at training, centre at evaluation")
    train_crop: Literal["random", "center"] = "random"
    flip: bool = Field(False, description="random horizontal flip at training")
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @model_validator(mode="after")
    def _ragged_needs_crop(self) -> ImageSpec:
        if isinstance(self.resize, int) and self.crop is None:
            raise ValueError("a shorter-side resize keeps the aspect ratio, so `crop` must be set to get square inputs")
        return self


class DataSpec(StrictModel):
    """Where the examples come from. `prepare` names a function that creates the files when absent."""

    source: Literal["image_list", "vpt_json"] = Field(
        description="image_list: a folder with '<relative path> <label>' list files (the NOAH / VTAB-1k format); "
        "vpt_json: VPT's split files, JSON objects {relative image path: class id} (FGVC)"
    )
    root: str = Field(description="folder of the images; ${BENCH_DATA}, ${BENCH_CACHE} and ~ are expanded")
    prepare: str | None = Field(None, description="'module:function' that writes the data into root when missing")
    splits: dict[str, str] = Field(
        description="split name -> list file, relative to root; 'bench:<path>' = a split file shipped in bench/assets"
    )
    num_classes: int = Field(gt=1)
    expected_sizes: dict[str, int] = Field(
        default_factory=dict, description="split name -> number of examples, checked when the split is read"
    )
    images: ImageSpec
    download_hint: str | None = Field(None, description="what to download and where, shown when data is missing")

    def resolved_root(self) -> Path:
        return Path(expand_path(self.root))

    def hint(self) -> str:
        """The download hint with ${BENCH_DATA} spelled out, so the user sees the real destination."""
        return expand_path(self.download_hint or "Download the data set and point data.root (or $BENCH_DATA) at it.")


class BackboneSpec(StrictModel):
    """The frozen pre-trained network: a timm model name, architecture overrides and where weights come from."""

    kind: Literal["vit"] = "vit"
    model: str = "vit_base_patch16_224.orig_in21k"
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    pretrained: bool = Field(True, description="load pre-trained weights (from `weights`, else the hub cache)")
    weights: str | None = Field(
        None, description="local weight file (.npz from Google, .safetensors, .pth); 'bench:<asset>' = shipped file"
    )
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="MLP/embedding dropout, active only for full FT")


# ================================================================ PAPER PARITY (profiles) ======================
# Everything the `paper` protocol profile needs, in one block (docs/parity.md lists every difference it covers).
# A task file may carry `profiles: {<name>: <partial task spec>}`; `load_task(path, name, profile)` deep-merges the
# named profile over the task (`apply_profile`) and records the name in `TaskSpec.profile` /
# `TextTaskSpec.profile`, so a run's identity changes with it. The fields below are the switches the paper profile
# sets; each default is today's (clean) behaviour, so specs without them load exactly as before.

CLEAN_PROFILE = "clean"
RESERVED_PROFILE_KEYS = ("name", "profile", "profiles")
Precision = Literal["auto", "fp32", "bf16", "fp16"]


class ParityProtocolFields(StrictModel):
    """Protocol switches shared by vision and language tasks."""

    precision: Precision = Field(
        "auto",
        description="auto: the run options decide (today: bf16 autocast on CUDA, fp32 on CPU); fp32: no "
        "autocast; bf16 / fp16: autocast to that type on CUDA (fp16 with a gradient scaler, as apex O1 / "
        "torch.cuda.amp); on CPU every value runs fp32. The official code: fp32, BART fp16 (apex O1)",
    )


class ParityTextProtocolFields(ParityProtocolFields):
    """Language-protocol switches of the paper profile."""

    backbone_mode: Literal["eval", "train"] = Field(
        "eval",
        description="the frozen backbone's module mode while training a PEFT method. eval: its dropout is "
        "off (today). train: its dropout is on, as in the official XSum code (PyTorch Lightning puts the whole "
        "module, frozen BART included, in train mode). Evaluation and decoding always run in eval mode",
    )
    format: Literal["clean", "official"] = Field(
        "clean",
        description="decoder-only (GPT-2) sequence text. clean: ' {source}' <bos> ' {target}' <eos> "
        "(no spaces around the special tokens). official: Li & Liang's ' {source} ' <bos> ' {target} ' <eos>, i.e. "
        "the source tokens of ' ' + source + ' ' then <bos>, the target tokens of ' ' + target + ' ' then <eos> "
        "(GPT-2 BPE turns each trailing space into its own token, id 220); decoding prompts are the same source "
        "part; outputs are decoded with clean_up_tokenization_spaces=True, cut at the first <eos>, stripped, and "
        "an empty output is written as 'Error' (run_generation.py)",
    )


class ParityGenerationFields(StrictModel):
    """Decoding switches of the paper profile (bench.generation.beam has the legacy beam search)."""

    beam_scoring: Literal["current", "legacy"] = Field(
        "current",
        description="current: the installed transformers' generate (a finished hypothesis's log-prob "
        "sum / generated length ** length_penalty). legacy: transformers 3.2's beam search as vendored by the "
        "official code (bench.generation.beam.legacy_beam_search): sum / (prompt + generated length) ** "
        "length_penalty, min / max lengths counting the prompt (or BART's decoder start token)",
    )
    early_stopping: bool | None = Field(
        True,
        description="beam search stops once num_beams hypotheses are finished (True, today's value); "
        "False: it stops when no running beam can beat the worst finished one; None: the model config's value, "
        "as transformers 3.2 read it (GPT-2 official: False)",
    )
    min_length: int | None = Field(
        None,
        ge=0,
        description="legacy only: minimum total length counting the prompt (decoder-only) or the "
        "decoder start token (encoder-decoder), as transformers 3.2's min_length; replaces min_new_tokens. "
        "GPT-2 official: 5, shorter than every prompt, so no constraint",
    )
    bad_words_ids: list[list[int]] | None = Field(
        None,
        description="token sequences never generated; None: ban_newlines decides. GPT-2 official: "
        "[[628], [198]] ('\\n\\n', '\\n')",
    )

    @model_validator(mode="after")
    def _legacy_only(self) -> ParityGenerationFields:
        if self.min_length is not None and self.beam_scoring != "legacy":
            raise ValueError(
                "min_length (a length counting the prompt) needs beam_scoring: legacy; use "
                "min_new_tokens with the current beam search"
            )
        return self


class MetricOptions(StrictModel):
    """Which variant of each metric a language task reports; defaults are the clean protocol's (and what the
    committed leaderboards were scored with). The loop passes them to bench.metrics.score(**options)."""

    bleu: Literal["perl", "pymteval"] = Field(
        "perl",
        description="E2E BLEU. perl: mteval-v13a-sig.pl (= sacrebleu). pymteval: measure_scores.py -p, "
        "as Li & Liang ran it (differs for hypotheses shorter than 4 tokens)",
    )
    nist: Literal["pymteval", "perl"] = Field("pymteval", description="E2E NIST (measure_scores.py -p: pymteval)")
    rouge: Literal["global", "batch_mean"] = Field(
        "global",
        description="XSum ROUGE. global: one bootstrap mid over all items. batch_mean: the official "
        "number, the mean over consecutive batches of `rouge_batch_size` items of each batch's bootstrap mid "
        "(rounded to 4 decimals as the official code does), numpy seeded once with rouge_seed",
    )
    rouge_batch_size: int = Field(8, gt=0, description="batch_mean: items per batch (official test decoding: 8)")
    rouge_seed: int = Field(12345, description="numpy seed of the bootstrap (official: --seed, 101)")
    dart_text: Literal["normalised", "raw"] = Field(
        "normalised",
        description="DART hypotheses. normalised: split and lowercased like the reference files. "
        "raw: scored as generated, as run_eval_on_dart.sh does",
    )
    ter: Literal["sacrebleu", "tercom"] = Field(
        "sacrebleu",
        description="WebNLG / DART TER. sacrebleu: sacrebleu's TER port. tercom: bench's port of "
        "tercom 0.7.25's shift search (the jar the official scripts run)",
    )


class ProfiledTask(StrictModel):
    """Which profile a resolved task spec came from, and the task's profiles (unapplied, for provenance)."""

    profile: str = Field(CLEAN_PROFILE, description="set by the loader: 'clean' or the applied profile's name")
    profiles: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="profile name -> partial task spec deep-merged over the task when chosen"
    )


class ProfiledTextTask(ProfiledTask):
    """Language tasks also choose metric variants."""

    metric_options: MetricOptions = MetricOptions()

    @model_validator(mode="after")
    def _official_format_is_decoder_only(self) -> ProfiledTextTask:
        protocol, backbone = getattr(self, "protocol", None), getattr(self, "backbone", None)
        if protocol is not None and backbone is not None and protocol.format == "official" and backbone.kind != "gpt2":
            raise ValueError(
                f"protocol.format 'official' is the GPT-2 sequence format; the {backbone.kind} "
                "backbone has only one format (clean)"
            )
        return self


def profile_names(task: dict[str, Any] | AnyTaskSpec) -> list[str]:
    """The profiles a task offers, 'clean' first."""
    profiles = task.get("profiles") or {} if isinstance(task, dict) else task.profiles
    return [CLEAN_PROFILE, *sorted(profiles)]


def apply_profile(task: dict[str, Any] | AnyTaskSpec, profile: str | None, path: Path | None = None) -> AnyTaskSpec:
    """The task with one profile deep-merged over it (None / 'clean': the task as written), validated.

    `task` is a task file's mapping (includes resolved, `name` set) or an already loaded clean spec. Every profile
    of a mapping is validated as applied, so a broken profile is an error even when it is not chosen. Errors name
    the file, the field (profiles.<name>.<field> for a profile's) and the allowed profiles.
    """
    where = path or Path("<task>")
    if not isinstance(task, dict):
        if task.profile != CLEAN_PROFILE:
            raise BenchError(
                f"task '{task.name}' is already resolved with profile '{task.profile}'.",
                file=path,
                field="profile",
                hint="Apply a profile to the clean task.",
            )
        task = task.model_dump(mode="python")
    data = dict(task)
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise BenchError("must map profile names to partial task specs.", file=where, field="profiles")
    if data.get("profile", CLEAN_PROFILE) != CLEAN_PROFILE:
        raise BenchError(
            "is set by the loader (--protocol), not in the task file.",
            file=where,
            field="profile",
            hint="Remove it; put the profile's settings under profiles.<name>.",
        )
    data["profile"] = CLEAN_PROFILE
    for name, partial in profiles.items():
        if name == CLEAN_PROFILE or not str(name).isidentifier():
            raise BenchError(
                f"'{name}' cannot name a profile ('clean' is the task as written; names are identifiers).",
                file=where,
                field=f"profiles.{name}",
            )
        reserved = [key for key in RESERVED_PROFILE_KEYS if key in partial]
        if reserved:
            raise BenchError(
                f"a profile cannot set {', '.join(reserved)}.", file=where, field=f"profiles.{name}.{reserved[0]}"
            )
    clean = _validate_task(data, where, None)
    applied = {
        name: _validate_task(deep_merge(data, {**partial, "profile": name}), where, name)
        for name, partial in profiles.items()
    }
    if profile is None or profile == CLEAN_PROFILE:
        return clean
    if profile not in applied:
        raise BenchError(
            f"unknown profile '{profile}' for task '{data.get('name')}'.{did_you_mean(profile, profile_names(data))}",
            file=where,
            field="profiles",
            hint="Choose one of these, or add profiles.<name> to the task file.",
        )
    return applied[profile]


def _validate_task(data: dict[str, Any], path: Path, profile: str | None) -> AnyTaskSpec:
    """A task mapping as TaskSpec or TextTaskSpec (by data.source); a profile's errors name profiles.<name>."""
    try:
        spec: AnyTaskSpec = validate(task_class(data), data, path)
    except BenchError as exc:
        if profile is None:
            raise
        field = f"profiles.{profile}.{exc.field}" if exc.field else f"profiles.{profile}"
        raise BenchError(
            f"with profile '{profile}' applied: {exc.message}", file=path, field=field, hint=exc.hint
        ) from None
    return spec


# ================================================================ end of PAPER PARITY ==========================


class StageSpec(StrictModel):
    """Which splits a protocol stage trains on and which split it reports."""

    train: list[str] = Field(min_length=1)
    eval: str


class MethodOverride(StrictModel):
    """Per-task settings for one method; anything left unset falls back to the method, then the protocol."""

    optimizer: Literal["sgd", "adamw"] | None = None
    grid: dict[str, list[GridValue]] | None = None
    epochs: int | None = Field(None, gt=0)
    warmup_epochs: int | None = Field(None, ge=0)
    batch_size: int | None = Field(None, gt=0)
    hparams: dict[str, GridValue] = Field(default_factory=dict)


class ProtocolSpec(ParityProtocolFields):
    """Grid search on val, then final seeds; defaults are the paper's vision protocol."""

    epochs: int = Field(100, gt=0)
    warmup_epochs: int = Field(10, ge=0)
    batch_size: int = Field(128, gt=0)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = 0.9
    lr_scale_batch: int = Field(256, gt=0, description="effective lr = base_lr × batch_size / lr_scale_batch")
    grid: dict[str, list[GridValue]] = Field(
        default_factory=lambda: {"base_lr": [*PAPER_BASE_LRS], "weight_decay": [*PAPER_WEIGHT_DECAYS]}
    )
    grid_stage: StageSpec = StageSpec(train=["train"], eval="val")
    final_stage: StageSpec = StageSpec(train=["train", "val"], eval="test")
    grid_seed: int = Field(42, description="seed of every grid run (the official VTAB grid ran unseeded)")
    seeds: list[int] = Field(default_factory=lambda: list(PAPER_SEEDS), min_length=1)
    eval_every: int = Field(
        10,
        gt=0,
        description="grid runs evaluate val every N epochs and at the end; final runs evaluate test once, at the end",
    )
    eval_batch_size: int = Field(256, gt=0)
    methods: dict[str, MethodOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _warmup_fits(self) -> ProtocolSpec:
        if self.warmup_epochs >= self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) must be smaller than epochs ({self.epochs})")
        return self


class TaskSpec(ProfiledTask):
    """One benchmark task: data + backbone + protocol + metric."""

    modality: ClassVar[str] = "vision"  # which bench.train modality runs it
    name: str
    description: str = ""
    group: str | None = None
    metric: Literal["top1"] = "top1"
    primary_metric: Literal["top1"] = "top1"
    data: DataSpec
    backbone: BackboneSpec = BackboneSpec()
    protocol: ProtocolSpec = ProtocolSpec()

    @property
    def output_description(self) -> str:
        return f"{self.data.num_classes} classes"

    @model_validator(mode="after")
    def _stage_splits_exist(self) -> TaskSpec:
        for stage_name in ("grid_stage", "final_stage"):
            stage: StageSpec = getattr(self.protocol, stage_name)
            for split in [*stage.train, stage.eval]:
                if split not in self.data.splits:
                    raise ValueError(
                        f"protocol.{stage_name} uses split '{split}', which data.splits does not define "
                        f"(defined: {', '.join(sorted(self.data.splits))})"
                    )
        return self


class SuiteSpec(StrictModel):
    """A named list of tasks, optionally grouped (VTAB: natural / specialized / structured)."""

    name: str
    description: str = ""
    tasks: list[str] = Field(min_length=1)
    groups: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_duplicates(self) -> SuiteSpec:
        twice = sorted({t for t in self.tasks if self.tasks.count(t) > 1})
        if twice:
            raise ValueError(
                f"the suite lists {', '.join(twice)} twice; each task may appear once (a mean over "
                "tasks would count it double)"
            )
        return self


# ---------------------------------------------------------------- language (generation) tasks

TEXT_SOURCES = ("e2e", "webnlg2017", "dart", "xsum")
# The scores each suite reports (a task's primary_metric must be one of them: checked when the spec loads).
_TRIPLES = [f"{name}{suffix}" for name in ("BLEU", "METEOR", "TER") for suffix in ("", "_seen", "_unseen")]
SUITE_METRICS: dict[str, tuple[str, ...]] = {
    "e2e": ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"),
    "webnlg2017": tuple(_TRIPLES),
    "dart": ("BLEU", "METEOR", "TER"),
    "xsum": ("ROUGE-1", "ROUGE-2", "ROUGE-L"),
}


class HubDatasetSpec(StrictModel):
    """A dataset on the Hugging Face hub, read with `datasets.load_dataset` at a pinned revision."""

    repo: str
    revision: str = Field(description="branch, tag or commit; pin a commit for reproducible runs")
    config: str | None = None
    splits: dict[str, str] = Field(description="our split name -> the hub split name")


class TextDataSpec(StrictModel):
    """Text examples read from the official files under `root`, else from `hub`; `source` picks the reader
    and the linearisation (tables as Li & Liang did)."""

    source: Literal["e2e", "webnlg2017", "dart", "xsum"]
    root: str = Field(description="folder of the official files; ${BENCH_DATA}, ${BENCH_CACHE} and ~ are expanded")
    splits: dict[str, str] = Field(description="split name -> file relative to root, in the official format")
    hub: HubDatasetSpec | None = Field(None, description="used when the files under root are absent")
    prepare: str | None = Field(None, description="'module:function' that writes the data into root when missing")
    expected_sizes: dict[str, int] = Field(
        default_factory=dict, description="split name -> number of evaluation items (unique inputs), checked on read"
    )
    download_hint: str | None = Field(None, description="what to download and where, shown when data is missing")

    def resolved_root(self) -> Path:
        return Path(expand_path(self.root))

    def hint(self) -> str:
        return expand_path(self.download_hint or "Download the data set and point data.root (or $BENCH_DATA) at it.")


class LanguageBackboneSpec(StrictModel):
    """A frozen transformers model: a hub id, or a local folder ('bench:<asset>' = shipped with bench)."""

    kind: Literal["gpt2", "bart"]
    model: str = Field(description="hub id (e.g. gpt2-medium, facebook/bart-large) or a folder with config + weights")
    revision: str | None = Field(None, description="hub revision to load; pin a commit for reproducible runs")
    pretrained: bool = Field(True, description="load weights; false = random init from the config (tests)")
    config_overrides: dict[str, Any] = Field(default_factory=dict)
    dropout: float | None = Field(None, ge=0.0, lt=1.0, description="None keeps the model config's dropout")
    shift_positions: bool = Field(
        True, description="GPT-2: position ids start after the prefix, as with past_key_values (Li & Liang, HF peft)"
    )


class GenerationSpec(ParityGenerationFields):
    """Decoding settings (beam search, no sampling)."""

    num_beams: int = Field(5, gt=0)
    max_new_tokens: int = Field(100, gt=0)
    min_new_tokens: int = Field(0, ge=0)
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    ban_newlines: bool = Field(False, description="never generate a token containing a newline (GPT-2 tasks)")
    batch_size: int = Field(16, gt=0)


class TextProtocolSpec(ParityTextProtocolFields):
    """Language protocol of the paper's code: AdamW, linear schedule per step, gradient clipping."""

    epochs: int = Field(5, gt=0)
    warmup_steps: int = Field(0, ge=0)
    batch_size: int = Field(10, gt=0)
    optimizer: Literal["adamw"] = "adamw"
    adam_eps: float = 1e-8
    grad_clip: float | None = Field(1.0, gt=0.0)
    loss: Literal["token_mean", "sequence_sum"] = Field(
        "token_mean", description="sequence_sum: token NLL summed per sequence, mean over the batch (Li & Liang GPT-2)"
    )
    max_source_tokens: int = Field(512, gt=0)
    max_target_tokens: int = Field(100, gt=0)
    grid: dict[str, list[GridValue]] = Field(
        default_factory=lambda: {"base_lr": [5e-5], "weight_decay": [0.0]},  # type: ignore[arg-type]
        description="per-method values usually come from protocol.methods (the paper's README commands)",
    )
    grid_stage: StageSpec = StageSpec(train=["train"], eval="val")
    final_stage: StageSpec = StageSpec(train=["train"], eval="test")
    grid_seed: int = 101
    seeds: list[int] = Field(default_factory=lambda: [101, 42, 44, 82, 100], min_length=1)
    select_checkpoint: Literal["last", "best_val"] = Field(
        "last", description="best_val: evaluate `select_split` after every epoch, test the best epoch (XSUM)"
    )
    select_split: str = "val"
    select_examples: int | None = Field(None, gt=0, description="first N items of select_split (XSUM: 500)")
    generation: GenerationSpec = GenerationSpec()
    methods: dict[str, MethodOverride] = Field(default_factory=dict)


class TextTaskSpec(ProfiledTextTask):
    """A generation task: text data + a transformers backbone + the language protocol + a metric suite."""

    modality: ClassVar[str] = "language"
    name: str
    description: str = ""
    group: str | None = None
    metric: Literal["e2e", "webnlg2017", "dart", "xsum"]
    primary_metric: str = Field(description="the score selection and leaderboards use (e.g. BLEU, ROUGE-2)")
    data: TextDataSpec
    backbone: LanguageBackboneSpec
    protocol: TextProtocolSpec = TextProtocolSpec()

    @property
    def output_description(self) -> str:
        return f"{self.metric} metrics (the language model's own head)"

    @model_validator(mode="after")
    def _primary_metric_is_reported(self) -> TextTaskSpec:
        reported = SUITE_METRICS[self.metric]
        if self.primary_metric not in reported:
            raise ValueError(
                f"primary_metric '{self.primary_metric}' is not a score of the {self.metric} metric "
                f"suite, so selection would only fail after training; it reports "
                f"{', '.join(reported)}"
            )
        return self

    @model_validator(mode="after")
    def _splits_exist(self) -> TextTaskSpec:
        protocol = self.protocol
        used = [
            *protocol.grid_stage.train,
            protocol.grid_stage.eval,
            *protocol.final_stage.train,
            protocol.final_stage.eval,
        ]
        if protocol.select_checkpoint == "best_val":
            used.append(protocol.select_split)
        for split in used:
            if split not in self.data.splits:
                raise ValueError(
                    f"the protocol uses split '{split}', which data.splits does not define "
                    f"(defined: {', '.join(sorted(self.data.splits))})"
                )
        return self


AnyTaskSpec = TaskSpec | TextTaskSpec


def expand_path(text: str) -> str:
    """Expand ~ and ${VARS}; BENCH_DATA and BENCH_CACHE get defaults so specs work out of the box."""
    env = dict(os.environ)
    env.setdefault("BENCH_CACHE", str(default_cache_dir()))
    env.setdefault("BENCH_DATA", str(Path("~/data").expanduser()))
    for key, value in env.items():
        text = text.replace("${" + key + "}", value)
    return os.path.expanduser(text)


ASSETS_DIR = Path(__file__).resolve().parent / "assets"


def resolve_asset(text: str) -> Path:
    """'bench:<name>' is a file or folder shipped in bench/assets; anything else a path (~ and ${VARS} expanded)."""
    if text.startswith("bench:"):
        return ASSETS_DIR / text.removeprefix("bench:")
    return Path(expand_path(text))


def default_cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE", Path("~/.cache/peft-bench").expanduser()))


# ---------------------------------------------------------------- YAML loading


MAX_SPEC_BYTES = 1 << 20


class DuplicateKey(Exception):
    def __init__(self, key: Any, line: int) -> None:
        super().__init__(f"duplicate key {key!r} at line {line}")
        self.key, self.line = key, line


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping, and anchors / aliases (whose expansion is
    unbounded; specs share settings through `include:`)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "YAML aliases (*name) are not allowed in specs; share settings with include:",
                event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def strict_yaml(text: str) -> Any:
    """What yaml.safe_load gives, through StrictLoader. Parsed once per text in a process (a fresh copy each
    call): listing the specs, then resolving suites and includes, reads the same files many times."""
    if text not in _PARSED:
        loader = StrictLoader(text)
        try:
            _PARSED[text] = loader.get_single_data()
        finally:
            loader.dispose()
        if len(_PARSED) > 512:
            _PARSED.pop(next(iter(_PARSED)))
    return copy.deepcopy(_PARSED[text])


_PARSED: dict[str, Any] = {}


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML mapping with yaml.safe_load, resolving `include:` (relative paths, deep-merged)."""
    return _read_with_includes(path, seen=())


def _read_with_includes(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise BenchError(f"include cycle: {chain}.", file=path, field="include")
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise BenchError(
                f"is {path.stat().st_size:,} bytes; a spec file may have at most {MAX_SPEC_BYTES:,}.",
                file=path,
                hint="A task or suite spec is a few lines of YAML; is this the right file?",
            )
        text = path.read_text()
    except FileNotFoundError as exc:
        raise BenchError("file not found.", file=path) from exc
    except IsADirectoryError as exc:
        raise BenchError("is a folder, not a YAML file.", file=path) from exc
    except UnicodeDecodeError as exc:
        raise BenchError(f"is not UTF-8 text ({exc.reason}).", file=path) from exc
    try:
        data = strict_yaml(text)
    except DuplicateKey as exc:
        raise BenchError(
            f"the key '{exc.key}' appears twice in one mapping (line {exc.line}); YAML would silently "
            "keep the last one.",
            file=path,
            field=str(exc.key),
            hint="Keep one of them.",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BenchError(
            f"malformed YAML{where}: {problem}.", file=path, hint="Fix the syntax (indentation, colons, quotes)."
        ) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BenchError(f"expected a mapping of fields, found {type(data).__name__}.", file=path)
    includes = data.pop("include", None)
    if includes is None:
        return data
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise BenchError("must be a file name or a list of file names.", file=path, field="include")
    merged: dict[str, Any] = {}
    for include in includes:
        merged = deep_merge(merged, _read_with_includes(path.parent / include, (*seen, path)))
    return deep_merge(merged, data)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; any other value in `override` replaces the base value."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def validate(model: type[StrictModel], data: dict[str, Any], path: Path) -> Any:
    """Validate data against a schema; the first problem becomes a BenchError naming file and field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        field = ".".join(loc) if loc else None
        if err["type"] == "extra_forbidden":
            allowed = allowed_fields(model, err["loc"][:-1])
            raise BenchError(
                f"unknown field '{loc[-1]}'.",
                file=path,
                field=field,
                hint=f"Allowed fields here: {', '.join(allowed)}." if allowed else None,
            ) from None
        if err["type"] == "missing":
            raise BenchError("required field is missing.", file=path, field=field) from None
        more = f" ({len(exc.errors()) - 1} more problem(s) after this one)" if len(exc.errors()) > 1 else ""
        message = str(err["msg"]).removeprefix("Value error, ")  # pydantic's prefix for our own validators
        raise BenchError(f"{message.rstrip('.')}{more}.", file=path, field=field) from None


def allowed_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names accepted at a location inside a schema (for 'unknown field' messages)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", None)
        if fields and part in fields:
            current = _model_of(fields[part].annotation)
        # else: a dict key such as protocol.methods.<name>; the dict's value model is already current
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else []


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def task_class(data: dict[str, Any]) -> type[TaskSpec] | type[TextTaskSpec]:
    """A generation task when `data.source` names a text reader, else a vision task."""
    source = data.get("data", {}).get("source") if isinstance(data.get("data"), dict) else None
    return TextTaskSpec if source in TEXT_SOURCES else TaskSpec


TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*(/[A-Za-z0-9][A-Za-z0-9_.+-]*)*")


def check_task_name(name: str, path: Path) -> None:
    """A task's name is a folder path inside the run store: plain path components, nothing that leaves it."""
    if not TASK_NAME.fullmatch(name) or any(part in (".", "..") for part in name.split("/")) or len(name) > 200:
        raise BenchError(
            f"'{name}' cannot be a task name: names are the file's path below its tasks folder, "
            "made of letters, digits and _ . + - (no spaces, no '..').",
            file=path,
            field="name",
            hint="Rename the file.",
        )


def load_task(path: Path, name: str, profile: str | None = None) -> AnyTaskSpec:
    """A vision task, or a generation task when `data.source` names a text reader; `profile` (e.g. 'paper')
    deep-merges the task's profiles.<profile> over it (apply_profile)."""
    data = read_yaml(path)
    check_task_name(name, path)
    if data.setdefault("name", name) != name:
        raise BenchError(
            f"a task's name is its path below the tasks folder ('{name}'); this file says "
            f"name: {data['name']!r}, which would store its runs as another task's.",
            file=path,
            field="name",
            hint="Remove the name field (or rename the file).",
        )
    return apply_profile(data, profile, path)


def task_from_record(spec: dict[str, Any]) -> AnyTaskSpec:
    """The resolved task spec stored in a run record (ValueError when it no longer validates)."""
    resolved: AnyTaskSpec = task_class(spec).model_validate(spec)
    return resolved


def load_suite(path: Path, name: str) -> SuiteSpec:
    data = read_yaml(path)
    data.setdefault("name", name)
    spec: SuiteSpec = validate(SuiteSpec, data, path)
    return spec


def is_suite_file(path: Path) -> bool:
    """Suite files list tasks; everything else under tasks/ (not starting with '_') is a task."""
    try:
        data = strict_yaml(path.read_text())
    except (yaml.YAMLError, DuplicateKey, UnicodeDecodeError, OSError):
        return False  # reported when the file is loaded
    return isinstance(data, dict) and "tasks" in data
