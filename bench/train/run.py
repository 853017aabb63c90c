"""One run: (task, method, hyper-parameters, seed, stage) trained once and written as an immutable record.

Resumable: a checkpoint is written at epoch boundaries, and an epoch's batches depend only on
(seed, epoch), so a killed run continues exactly where it stopped. A non-finite loss ends the run as
'diverged' (recorded, never raised), so a grid sweep goes on.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import logging
import os
import platform
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.backbones import Backbone, build_backbone
from bench.data.subsets import SUBSET_FILE, nested_subset, take
from bench.data.tensor_store import DecodedSplit, concat_splits, load_split
from bench.data.transforms import FeatureBatches, ImageBatches
from bench.errors import BenchError
from bench.method import Method
from bench.ops import faults
from bench.spec import AnyTaskSpec, TaskSpec, TextTaskSpec
from bench.store import (
    CHECKPOINT,
    PREDICTIONS,
    SCHEMA_VERSION,
    TRAINED,
    CorruptFile,
    RunStore,
    atomic_write_bytes,
    atomic_write_json,
    checksum_path,
    read_checked,
    run_key,
    write_checked,
)
from bench.train.model import PeftModel
from bench.train.optim import build_optimizer, effective_lr, lr_multiplier, set_lr

log = logging.getLogger("bench.run")

# Bump when a change to the training code changes results, so old records are not reused.
RUNNER_VERSION = 1
OPTIM_KEYS = ("base_lr", "weight_decay")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs; `identity()` is what its key hashes."""

    task: AnyTaskSpec
    method: str
    hparams: dict[str, Any]
    optim: dict[str, Any]
    stage: str
    seed: int
    train_splits: tuple[str, ...]
    eval_split: str
    grid_prune: dict[str, Any] | None = None  # --grid-prune settings; part of the identity only when set
    data_fraction: float | None = None  # --data-fraction below 1: a nested class-balanced training subset
    train_examples: int | None = None  # --train-examples (language): a nested seeded subset of N training pairs

    def describe(self) -> str:
        shown = {**{k: self.optim[k] for k in OPTIM_KEYS}, **self.hparams}
        text = " ".join(f"{k}={v}" for k, v in shown.items())
        fraction = f" data_fraction={self.data_fraction:g}" if self.data_fraction else ""
        fraction += f" train_examples={self.train_examples}" if self.train_examples else ""
        return f"{self.task.name} {self.method} {self.stage} seed={self.seed}{fraction} {text}"

    def identity(self, data_fingerprints: dict[str, str]) -> dict[str, Any]:
        """Result-changing settings only: no machine paths, no settings of other runs (seed list, grid)."""
        data = self.task.data.model_dump(mode="json", exclude={"root", "prepare", "download_hint"})
        backbone = self.task.backbone.model_dump(mode="json")
        if backbone.get("weights"):
            backbone["weights"] = Path(str(backbone["weights"])).name
        return {
            "runner_version": RUNNER_VERSION,
            "task": self.task.name,
            "metric": self.task.metric,
            "data": data,
            "data_fingerprints": data_fingerprints,
            "backbone": backbone,
            "method": self.method,
            "hparams": self.hparams,
            "optim": self.optim,
            "stage": self.stage,
            "seed": self.seed,
            "train_splits": list(self.train_splits),
            "eval_split": self.eval_split,
            "eval_every": getattr(self.task.protocol, "eval_every", None),
            **({"grid_prune": self.grid_prune} if self.grid_prune else {}),
            **({"data_fraction": self.data_fraction} if self.data_fraction else {}),
            **({"train_examples": self.train_examples} if self.train_examples else {}),
        }


@dataclass
class RunOptions:
    """How to execute (never changes results): device, precision, checkpoint cadence, caches."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    checkpoint_interval_s: float = 120.0
    cache_dir: Path | None = None
    progress: bool = False
    feature_cache: bool = True  # head-only methods train on cached frozen features (equal up to float rounding)
    compile: str | None = None  # torch.compile backend for the model's forward ("inductor"), None = eager


class _Caches:
    """Per-process caches: a pristine backbone per spec, decoded splits, device batches."""

    def __init__(self) -> None:
        self.backbones: dict[str, Backbone] = {}
        self.splits: dict[tuple[str, str], DecodedSplit] = {}
        self.language_backbones: dict[str, Any] = {}
        self.feature_sets: dict[tuple[Any, ...], FeatureBatches] = {}

    def backbone(self, task: TaskSpec) -> Backbone:
        key = task.backbone.model_dump_json()
        if key not in self.backbones:
            # A fixed seed for random-init backbones, and no effect on the run's own random stream.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                self.backbones[key] = build_backbone(task.backbone)
        return copy.deepcopy(self.backbones[key])

    def features(self, task: TaskSpec, model: PeftModel, device: torch.device, autocast: bool
                 ) -> Callable[[ImageBatches | FeatureBatches], FeatureBatches]:
        """Frozen-backbone features of a split (evaluation transform, no grad), computed once per process for
        a (task data, backbone, device, precision): a linear-probing grid then trains heads only."""

        def get(batches: ImageBatches | FeatureBatches) -> FeatureBatches:
            assert isinstance(batches, ImageBatches)
            # The split's content fingerprint (a training subset has its own) keys the features.
            key = (task.backbone.model_dump_json(), task.data.images.model_dump_json(), batches.split.fingerprint,
                   str(device), autocast)
            if key not in self.feature_sets:
                model.eval()
                chunks = []
                with torch.no_grad():
                    for _, images, _ in batches.in_order(task.protocol.eval_batch_size):
                        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                            chunks.append(model.backbone(images).float())
                self.feature_sets[key] = FeatureBatches(torch.cat(chunks), batches.labels)
            return self.feature_sets[key]

        return get

    def split(self, task: TaskSpec, name: str, options: RunOptions) -> DecodedSplit:
        key = (task.data.model_dump_json(), name)
        if key not in self.splits:
            self.splits[key] = load_split(task.data, name, task.name, options.cache_dir, options.progress)
        return self.splits[key]


CACHES = _Caches()


def data_fingerprints(task: AnyTaskSpec, splits: list[str], options: RunOptions) -> dict[str, str]:
    if isinstance(task, TextTaskSpec):
        from bench.data.text import read_text_split

        return {name: read_text_split(task.data, name, task.name).fingerprint for name in splits}
    return {name: CACHES.split(task, name, options).fingerprint for name in splits}


def key_of(config: RunConfig, options: RunOptions) -> str:
    fingerprints = data_fingerprints(config.task, [*config.train_splits, config.eval_split], options)
    return run_key(config.identity(fingerprints))


FRESH = "_fresh"
SAVE_TRAINED_MAX = 5_000_000  # final PEFT runs keep their trained parameters (prefix, head) when at most this many
StopRule = Callable[[int, float], bool]
# A NaN/inf loss stops the run at once on CPU; on a GPU the check (a host-device sync) runs every this many steps.
NAN_CHECK_EVERY = 20


def execute_run(config: RunConfig, method_cls: type[Method], store: RunStore, options: RunOptions,
                selection: dict[str, Any] | None = None, should_stop: StopRule | None = None
                ) -> dict[str, Any] | None:
    """Run once (or return the existing record). None when another live process holds the run.

    `selection` (how a final run's hyper-parameters were chosen) is stored in the record as provenance.
    A record produced by this call (not read from the store) carries FRESH = True, which is never stored.
    `should_stop(epoch, val_top1)`, asked after each val evaluation of a vision grid run, ends the run as
    "pruned" when it says so (--grid-prune).
    """
    fingerprints = data_fingerprints(config.task, [*config.train_splits, config.eval_split], options)
    identity = config.identity(fingerprints)
    key = run_key(identity)
    run_dir = store.run_dir(config.task.name, config.method, config.stage, key)
    existing = store.load(run_dir)
    if existing is not None:
        return existing
    with store.lock(run_dir) as held:
        if not held:
            log.warning("skipping %s: another process is running it (%s)", config.describe(), run_dir)
            return None
        existing = store.load(run_dir)  # finished while we waited for the lock
        if existing is not None:
            return existing
        if isinstance(config.task, TextTaskSpec):
            from bench.train.text_run import build_backbone_for, train_text_run

            backbone = build_backbone_for(config.task, CACHES.language_backbones)
            record = train_text_run(config, method_cls, identity, key, run_dir, options, backbone)
        else:
            record = _train(config, method_cls, identity, key, run_dir, options, should_stop)
        if selection is not None:
            record["selection"] = selection
        store.write(run_dir, record)
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
        checksum_path(run_dir / CHECKPOINT).unlink(missing_ok=True)
        return {**record, FRESH: True}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _train(config: RunConfig, method_cls: type[Method], identity: dict[str, Any], key: str, run_dir: Path,
           options: RunOptions, should_stop: StopRule | None = None) -> dict[str, Any]:
    task, optim, device = config.task, config.optim, options.device
    assert isinstance(task, TaskSpec)
    started = time.time()
    train_split = concat_splits([CACHES.split(task, s, options) for s in config.train_splits])
    if config.data_fraction:
        indices = nested_subset(train_split.labels.numpy(), config.data_fraction, config.seed)
        atomic_write_json(run_dir / SUBSET_FILE, {"split": train_split.name, "fraction": config.data_fraction,
                                                  "seed": config.seed, "rule": "nested class-balanced",
                                                  "split_fingerprint": train_split.fingerprint,
                                                  "indices": indices.tolist()})
        train_split = take(train_split, indices, config.data_fraction)
    eval_split = CACHES.split(task, config.eval_split, options)
    train_batches: ImageBatches | FeatureBatches = ImageBatches(train_split, task.data.images, device)
    eval_batches: ImageBatches | FeatureBatches = ImageBatches(eval_split, task.data.images, device)

    backbone = CACHES.backbone(task)
    _seed_everything(config.seed)
    method = method_cls(method_cls.parse_hparams(config.hparams))
    model = PeftModel(backbone, method, task.data.num_classes).to(device)
    autocast = options.precision == "bf16"
    if options.feature_cache and method_cls.head_only and FeatureBatches.usable(task.data.images):
        features = CACHES.features(task, model, device, autocast)
        train_batches = features(train_batches)
        eval_batches = features(eval_batches)
        model.inputs_are_features = True
    lr = effective_lr(optim["base_lr"], optim["batch_size"], optim["lr_scale_batch"])
    optimizer = build_optimizer(model, optim["optimizer"], lr, optim["weight_decay"], optim["momentum"])

    history: list[dict[str, Any]] = []
    start_epoch, resumed_from, elapsed_before = 0, None, 0.0
    checkpoint_path = run_dir / CHECKPOINT
    state = load_torch(checkpoint_path, device)
    if state is not None:
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"].cpu())
        history, start_epoch = list(state["history"]), int(state["epoch"]) + 1
        resumed_from, elapsed_before = start_epoch, float(state["elapsed"])
        log.info("resuming %s at epoch %d", config.describe(), start_epoch)

    epochs, warmup = optim["epochs"], optim["warmup_epochs"]
    # The compiled module shares the model's parameters; state dicts and checkpoints keep using `model`.
    net: Any = torch.compile(model, backend=options.compile) if options.compile else model
    train_seconds, train_images = 0.0, 0
    last_checkpoint = time.time()
    status, predictions = "completed", None
    _reset_peak_memory(device)
    from tqdm import tqdm

    bar = tqdm(range(start_epoch, epochs), desc=config.describe()[:60], disable=not options.progress, leave=False,
               initial=start_epoch, total=epochs, unit="epoch")
    for epoch in bar:
        epoch_lr = lr * lr_multiplier(epoch, warmup, epochs)
        set_lr(optimizer, epoch_lr)
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        model.train()
        tick = time.time()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        nonfinite = torch.zeros((), device=device, dtype=torch.bool)
        check_every = 1 if device.type == "cpu" else NAN_CHECK_EVERY
        for step, (images, labels) in enumerate(train_batches.epoch(optim["batch_size"], generator)):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                logits = net(images)
            loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            faults.point("train_step")
            loss_sum += loss.detach() * len(labels)
            correct += (logits.detach().argmax(-1) == labels).sum()
            nonfinite |= ~torch.isfinite(loss.detach())
            if (step + 1) % check_every == 0 and bool(nonfinite):
                break  # diverged: the epoch's mean loss is non-finite, recorded below
        train_seconds += time.time() - tick
        train_images += len(train_batches)
        mean_loss = float(loss_sum) / len(train_batches)
        entry: dict[str, Any] = {"epoch": epoch, "lr": epoch_lr, "train_loss": mean_loss,
                                 "train_top1": 100.0 * float(correct) / len(train_batches)}
        if not np.isfinite(mean_loss):
            entry["train_loss"] = None
            history.append(entry)
            status = "diverged"
            log.warning("diverged: %s (non-finite loss at epoch %d)", config.describe(), epoch)
            break
        last = epoch == epochs - 1
        # Test is evaluated once, at the end of a final run (all the protocol reports); evaluating it every
        # eval_every epochs, as the VPT code does, can cost more than the training. Val (grid) is cheap.
        if last or (config.stage == "grid" and (epoch + 1) % task.protocol.eval_every == 0):
            top1, predictions = _evaluate(net, eval_batches, task.protocol.eval_batch_size, autocast, device)
            entry[f"{config.eval_split}_top1"] = top1
            # Asked at every val evaluation (the pruner records each report); its answer counts before the end.
            if should_stop is not None and should_stop(epoch + 1, top1) and not last:
                history.append(entry)
                status = "pruned"
                log.info("pruned: %s after epoch %d (val top1 %.2f)", config.describe(), epoch, top1)
                break
        history.append(entry)
        bar.set_postfix(loss=f"{mean_loss:.3f}")
        if not last and time.time() - last_checkpoint >= options.checkpoint_interval_s:
            _save_checkpoint(checkpoint_path, model, optimizer, history, epoch,
                             elapsed_before + time.time() - started)
            last_checkpoint = time.time()

    bar.close()
    metrics: dict[str, Any] = {"split": config.eval_split, "metric": task.metric, "epoch": epochs - 1}
    if status == "completed":
        metrics["top1"] = history[-1][f"{config.eval_split}_top1"]
        assert predictions is not None
        _write_predictions(run_dir / PREDICTIONS, predictions)
        if config.stage == "final" and not method_cls.trains_backbone and model.method_trainable <= SAVE_TRAINED_MAX:
            save_torch(run_dir / TRAINED, model.trainable_state())
    else:
        metrics["top1"] = None
        metrics[f"{status}_at_epoch"] = history[-1]["epoch"]  # diverged_at_epoch / pruned_at_epoch
    head_params = sum(p.numel() for p in model.head.parameters())
    cost = {"wall_s": elapsed_before + time.time() - started,
            "train_images_per_s": train_images / train_seconds if train_seconds else None}
    data = {"train_examples": len(train_batches), "eval_examples": len(eval_batches)}
    return build_record(config, key, status, identity, metrics, history, model, head_params, data, cost, options,
                        resumed_from)


def build_record(config: RunConfig, key: str, status: str, identity: dict[str, Any], metrics: dict[str, Any],
                 history: list[dict[str, Any]], model: Any, head_params: int, data: dict[str, Any],
                 cost: dict[str, Any], options: RunOptions, resumed_from: int | None) -> dict[str, Any]:
    """The run record shared by vision and language runs: what ran, its scores, parameters, cost, provenance."""
    backbone_params = model.backbone_params
    device = options.device
    return {
        "schema_version": SCHEMA_VERSION,
        "key": key,
        "status": status,
        "run": {
            "task": config.task.name, "method": config.method, "stage": config.stage, "seed": config.seed,
            "hparams": config.hparams, "optim": config.optim,
            "train_splits": list(config.train_splits), "eval_split": config.eval_split,
            **({"grid_prune": config.grid_prune} if config.grid_prune else {}),
            **({"data_fraction": config.data_fraction} if config.data_fraction else {}),
            **({"train_examples": config.train_examples} if config.train_examples else {}),
        },
        "metrics": metrics,
        "history": history,
        "params": {
            "backbone": backbone_params,
            "trainable": model.method_trainable,
            "stored": model.method_stored,
            "head": head_params,
            "trainable_percent": 100.0 * model.method_trainable / backbone_params,
            "trainable_with_head_percent": 100.0 * (model.method_trainable + head_params) / backbone_params,
        },
        "data": {**data, "fingerprints": identity["data_fingerprints"]},
        "cost": {
            **cost,
            **_peak_memory(device),
            "device": _device_name(device),
            "precision": options.precision,
            "compile": options.compile,
            "resumed_from_epoch": resumed_from,
        },
        "identity": identity,
        "task_spec": config.task.model_dump(mode="json"),
        "env": environment(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


@torch.no_grad()
def _evaluate(model: Any, batches: ImageBatches | FeatureBatches, batch_size: int, autocast: bool,
              device: torch.device) -> tuple[float, dict[str, np.ndarray]]:
    model.eval()
    preds, labels, indices = [], [], []
    for index, images, target in batches.in_order(batch_size):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(images)
        preds.append(logits.argmax(-1).cpu())
        labels.append(target.cpu())
        indices.append(index)
    pred, label = torch.cat(preds).numpy(), torch.cat(labels).numpy()
    top1 = 100.0 * float((pred == label).mean())
    return top1, {"index": torch.cat(indices).numpy(), "label": label, "pred": pred}


def _write_predictions(path: Path, predictions: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {k: v.astype(np.int32) for k, v in predictions.items()}
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def save_torch(path: Path, payload: Any) -> None:
    """torch.save, written atomically with a checksum (checkpoints and trained parameters are never read
    half-written or damaged)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_checked(path, buffer.getvalue())


def load_torch(path: Path, device: torch.device | str = "cpu") -> Any:
    """What save_torch wrote (tensors and plain containers only: weights_only). None when there is no file, or when
    it is damaged (truncated, changed, checksum missing): then it is removed with a warning, so that a checkpoint
    is recomputed from the start instead of being used."""
    try:
        data = read_checked(path)
    except CorruptFile as exc:
        log.warning("%s %s: discarded; it will be recomputed", exc.path, exc.reason)
        exc.discard()
        return None
    if data is None:
        return None
    return torch.load(io.BytesIO(data), map_location=device, weights_only=True)


def _save_checkpoint(path: Path, model: PeftModel, optimizer: torch.optim.Optimizer,
                     history: list[dict[str, Any]], epoch: int, elapsed: float) -> None:
    save_torch(path, {"model": model.trainable_state(), "optimizer": optimizer.state_dict(), "history": history,
                      "epoch": epoch, "rng": torch.get_rng_state(), "elapsed": elapsed})


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {"peak_memory_bytes": torch.cuda.max_memory_allocated(device), "peak_memory_kind": "cuda_allocated"}
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_memory_bytes": rss_kib * 1024, "peak_memory_kind": "process_max_rss"}


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def environment() -> dict[str, Any]:
    """Library versions, platform and git commit, recorded in every run."""
    import bench

    versions = {"python": sys.version.split()[0], "bench": bench.__version__, "torch": torch.__version__,
                "numpy": np.__version__}
    for name in ("timm", "torchvision", "transformers"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    return {"versions": versions, "platform": platform.platform(), "git_commit": git_commit()}


def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def default_device(requested: str | None = None) -> torch.device:
    """--device, checked before anything runs; default: CUDA when present, else the CPU."""
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise BenchError(f"--device '{requested}' is not a device name ({exc}).", field="--device",
                         hint="Use cpu, cuda or cuda:N.") from exc
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise BenchError(f"--device {requested} is not available: this machine shows {count} CUDA device(s).",
                             field="--device", hint="Use cpu, or cuda:N with N below the count (CUDA_VISIBLE_DEVICES "
                                                    "decides which GPUs are visible).")
    return device


def configure_threads() -> None:
    """Use the machine's cores for CPU runs unless the user set OMP_NUM_THREADS."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
