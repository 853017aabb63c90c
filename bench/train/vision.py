"""The vision modality: decoded image splits, a ViT with a classification head, the paper's SGD / AdamW optimizer
with per-epoch warm-up + cosine, cross-entropy, top-1 with per-image predictions.

Linear probing (head-only methods) trains on frozen features computed once per split and process.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bench.data.split_cache import SplitCache
from bench.data.subsets import SUBSET_FILE, nested_subset, smoke_subset, take
from bench.data.tensor_store import DecodedSplit
from bench.data.transforms import FeatureBatches, ImageBatches
from bench.errors import BenchError
from bench.method import Method
from bench.spec import TaskSpec, default_cache_dir
from bench.store import PREDICTIONS, atomic_write_bytes, atomic_write_json, read_json_object
from bench.train.config import RunConfig, RunOptions
from bench.train.device import autocast
from bench.train.memory import eval_batch_size, resident_splits
from bench.train.modality import Evaluation, Modality, StepResult
from bench.train.model import PeftModel
from bench.train.optim import build_optimizer, effective_lr, lr_multiplier

Batches = ImageBatches | FeatureBatches


@dataclass
class VisionData:
    train: Batches
    eval: Batches
    # The last evaluation of the eval split (epoch, top-1, predictions): the final epoch's is reported as is.
    last_eval: tuple[int, float, dict[str, np.ndarray]] | None = None


class VisionModality(Modality):
    name = "vision"
    variants: ClassVar[dict[str, str]] = {"--data-fraction": "nested class-balanced training subsets",
                "--grid-prune": "successive halving over the grid",
                "--compile": "torch.compile of the model's forward, dynamo reset before each run"}

    def __init__(self) -> None:
        self.backbones: dict[str, Any] = {}
        self.caches: dict[Path | None, SplitCache] = {}  # per cache folder: decoded splits within a memory budget
        self.feature_sets: dict[tuple[Any, ...], FeatureBatches] = {}

    # -- data ---------------------------------------------------------------------------------------------------
    def cache(self, options: RunOptions) -> SplitCache:
        if options.cache_dir not in self.caches:
            self.caches[options.cache_dir] = SplitCache(cache_dir=options.cache_dir, progress=options.progress)
        return self.caches[options.cache_dir]

    def split(self, task: TaskSpec, names: str | tuple[str, ...], options: RunOptions) -> DecodedSplit:
        """One split, or the union of several in order (train + val), memory-mapped from the decode-once cache."""
        return self.cache(options).get(task.data, names, task.name)

    def data_status(self, task: Any) -> Any:
        from bench.data.fetch import check_image_task

        return check_image_task(task)

    def missing_data(self, task: Any) -> str | None:
        from bench.data.splits import missing_data

        return None if task.data.prepare else missing_data(task.data)

    def split_sizes(self, task: Any) -> dict[str, int | None]:
        from bench.data.splits import count_examples

        present = task.data.resolved_root().is_dir()
        return {s: count_examples(task, s) if present else task.data.expected_sizes.get(s) for s in task.data.splits}

    def data_present(self, task: Any) -> bool:
        from bench.data.splits import split_file

        return task.data.resolved_root().is_dir() and all(split_file(task.data, s).is_file() for s in task.data.splits)

    def backbone_cost(self, task: Any) -> tuple[int, float] | None:
        """Parameters, and 2 x parameters x tokens FLOPs per image, of the backbone built on the meta device.
        Kept in $BENCH_CACHE/backbone-costs.json (by model, arguments and timm version): building the model means
        importing timm, about 2.7 s of a dry run's 5.4 s."""
        from importlib.metadata import version

        kwargs: dict[str, Any] = {"num_classes": 0, **task.backbone.model_kwargs}
        key = json.dumps([task.backbone.model, kwargs, version("timm")], sort_keys=True, default=str)
        path = default_cache_dir() / "backbone-costs.json"
        known = read_json_object(path)
        entry = known.get(key)
        if isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, int | float) for x in entry):
            return int(entry[0]), float(entry[1])
        import timm  # absent, damaged or without this backbone: build it

        with torch.device("meta"):
            model: Any = timm.create_model(task.backbone.model, pretrained=False, **kwargs)
        params = sum(p.numel() for p in model.parameters())
        grid = model.patch_embed.grid_size
        cost = params, 2.0 * params * int(grid[0] * grid[1] + model.num_prefix_tokens)
        with contextlib.suppress(OSError):  # a read-only cache only costs the next dry run the import
            atomic_write_json(path, {**known, key: list(cost)})
        return cost

    def fingerprints(self, task: Any, splits: list[str], options: RunOptions) -> dict[str, str]:
        """From the cache's index files: planning never maps pixels."""
        return self.cache(options).fingerprints(task.data, splits, task.name)

    def prepare(self, config: RunConfig, run_dir: Path, options: RunOptions) -> VisionData:
        task, device = config.task, options.torch_device()
        assert isinstance(task, TaskSpec)
        train_split = self.split(task, config.train_splits, options)
        if config.data_fraction:
            indices = nested_subset(train_split.labels.numpy(), config.data_fraction, config.seed)
            atomic_write_json(run_dir / SUBSET_FILE, {"split": train_split.name, "fraction": config.data_fraction,
                                                      "seed": config.seed, "rule": "nested class-balanced",
                                                      "split_fingerprint": train_split.fingerprint,
                                                      "indices": indices.tolist()})
            train_split = take(train_split, indices, config.data_fraction)
        eval_split = self.split(task, config.eval_split, options)
        if config.smoke is not None and config.smoke.limit is not None:
            # --limit after --data-fraction: at most N training examples (the union of the training splits) and N
            # evaluation examples, the classes taking turns (bench.data.subsets.smoke_subset).
            train_split, eval_split = (limited(split, config.smoke.limit) for split in (train_split, eval_split))
        # Pixels live on the device when they fit (decode once, no copies per step); else in host memory.
        train_resident, eval_resident = resident_splits([train_split, eval_split], device, options.memory_fallback)
        return VisionData(ImageBatches(train_split, task.data.images, device, train_resident),
                          ImageBatches(eval_split, task.data.images, device, eval_resident))

    def smoke_warning(self, task: Any, limit: int) -> str | None:
        classes = task.data.num_classes
        if limit < classes:
            return (f"--limit {limit} is below the {classes} classes of {task.name}: the training and evaluation "
                    "subsets miss some classes (a quick check only; the score means nothing).")
        return None

    def optim_settings(self, task: Any, method: str, settings: Any, point: dict[str, Any]) -> dict[str, Any]:
        warmup = settings.warmup_epochs
        if warmup >= settings.epochs:
            raise BenchError(f"warm-up ({warmup} epochs) must be shorter than training ({settings.epochs} epochs) "
                             f"for method '{method}'.", field="protocol.epochs")
        return {"optimizer": settings.optimizer, "base_lr": float(point["base_lr"]),
                "weight_decay": float(point["weight_decay"]), "momentum": task.protocol.momentum,
                "epochs": settings.epochs, "warmup_epochs": warmup, "batch_size": settings.batch_size,
                "lr_scale_batch": task.protocol.lr_scale_batch}

    def data_summary(self, data: VisionData) -> dict[str, Any]:
        return {"train_examples": len(data.train), "eval_examples": len(data.eval)}

    # -- model --------------------------------------------------------------------------------------------------
    def pristine_backbone(self, task: Any) -> Any:
        from bench.backbones import build_backbone

        key = task.backbone.model_dump_json()
        if key not in self.backbones:
            # A fixed seed for random-init backbones, and no effect on the run's own random stream.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                self.backbones[key] = build_backbone(task.backbone)
        return copy.deepcopy(self.backbones[key])

    def build_model(self, config: RunConfig, method: Method, backbone: Any) -> PeftModel:
        assert isinstance(config.task, TaskSpec)
        return PeftModel(backbone, method, config.task.data.num_classes)

    def after_model(self, config: RunConfig, method: Method, model: PeftModel, data: VisionData,
                    options: RunOptions) -> VisionData:
        task = config.task
        assert isinstance(task, TaskSpec)
        if options.feature_cache and method.head_only and FeatureBatches.usable(task.data.images):
            features = self._features(task, model, options)
            data.train, data.eval = features(data.train), features(data.eval)
            model.inputs_are_features = True
        return data

    def _features(self, task: TaskSpec, model: PeftModel, options: RunOptions) -> Any:
        """Frozen-backbone features of a split (evaluation transform, no grad), computed once per process for
        a (task data, backbone, device, precision): a linear-probing grid then trains heads only."""
        device, precision = options.torch_device(), options.precision

        def get(batches: Batches) -> FeatureBatches:
            assert isinstance(batches, ImageBatches)
            # The split's content fingerprint (a training subset has its own) keys the features.
            key = (task.backbone.model_dump_json(), task.data.images.model_dump_json(), batches.split.fingerprint,
                   str(device), precision)
            if key not in self.feature_sets:
                model.eval()
                chunks = []
                with torch.no_grad():
                    for _, images, _ in batches.in_order(eval_batch_size(task.protocol.eval_batch_size,
                                                                         options.memory_fallback)):
                        with autocast(device, precision):
                            chunks.append(model.backbone(images).float())
                self.feature_sets[key] = FeatureBatches(torch.cat(chunks), batches.labels)
            return self.feature_sets[key]

        return get

    def optimizer(self, model: PeftModel, optim: dict[str, Any]) -> torch.optim.Optimizer:
        lr = effective_lr(optim["base_lr"], optim["batch_size"], optim["lr_scale_batch"])
        return build_optimizer(model, optim["optimizer"], lr, optim["weight_decay"], optim["momentum"])

    def learning_rate(self, optim: dict[str, Any], epoch: int, step: int, steps_per_epoch: int) -> float:
        """Stepped once per epoch: warm-up from 0, then cosine (VPT's WarmupCosineSchedule)."""
        lr = effective_lr(optim["base_lr"], optim["batch_size"], optim["lr_scale_batch"])
        return lr * lr_multiplier(epoch, optim["warmup_epochs"], optim["epochs"])

    def steps_per_epoch(self, data: VisionData, optim: dict[str, Any]) -> int:
        return -(-len(data.train) // optim["batch_size"])

    # -- steps and evaluation -----------------------------------------------------------------------------------
    def batches(self, data: VisionData, optim: dict[str, Any], generator: torch.Generator, device: torch.device
                ) -> Iterator[Any]:
        return data.train.epoch(optim["batch_size"], generator)

    def step(self, net: Any, data: VisionData, batch: Any, precision: str, device: torch.device) -> StepResult:
        images, labels = batch
        with autocast(device, precision):
            logits = net(images)
        loss = F.cross_entropy(logits.float(), labels)
        correct = (logits.detach().argmax(-1) == labels).sum()
        return StepResult(loss, len(labels), {"correct": correct})

    def epoch_entry(self, epoch: int, lr: float, sums: dict[str, float], examples: int) -> dict[str, Any]:
        return {"epoch": epoch, "lr": lr, "train_loss": sums["loss"] / examples,
                "train_top1": 100.0 * sums["correct"] / examples}

    def periodic_evaluation(self, net: Any, data: VisionData, config: RunConfig, epoch: int, last: bool,
                            options: RunOptions) -> Evaluation | None:
        # Test is evaluated once, at the end of a final run (all the protocol reports); evaluating it every
        # eval_every epochs, as the VPT code does, can cost more than the training. Val (grid) is cheap.
        task = config.task
        assert isinstance(task, TaskSpec)
        if not (last or (config.stage == "grid" and (epoch + 1) % task.protocol.eval_every == 0)):
            return None
        batch_size = eval_batch_size(task.protocol.eval_batch_size, options.memory_fallback)
        top1, predictions = evaluate(net, data.eval, batch_size, options)
        data.last_eval = (epoch, top1, predictions)
        return Evaluation({f"{config.eval_split}_top1": top1}, top1)

    def final_evaluation(self, net: Any, data: VisionData, config: RunConfig, run_dir: Path, options: RunOptions,
                         chosen_epoch: int) -> dict[str, Any]:
        task = config.task
        assert data.last_eval is not None and data.last_eval[0] == chosen_epoch  # the last epoch was evaluated
        _, top1, predictions = data.last_eval
        write_predictions(run_dir / PREDICTIONS, predictions)
        return {"split": config.eval_split, "metric": task.metric, "epoch": chosen_epoch, "top1": top1}

    def failed_metrics(self, config: RunConfig) -> dict[str, Any]:
        return {"split": config.eval_split, "metric": config.task.metric, "epoch": config.optim["epochs"] - 1,
                "top1": None}

    def throughput(self, sums: dict[str, float], train_seconds: float, examples: int) -> dict[str, Any]:
        return {"train_images_per_s": examples / train_seconds if train_seconds else None}


def limited(split: DecodedSplit, limit: int) -> DecodedSplit:
    """At most `limit` examples of a split (--limit), the classes taking turns; the split itself when smaller."""
    if len(split) <= limit:
        return split
    return take(split, smoke_subset(len(split), limit, split.labels.numpy()), f"limit {limit}")


@torch.no_grad()
def evaluate(model: Any, batches: Batches, batch_size: int, options: RunOptions
             ) -> tuple[float, dict[str, np.ndarray]]:
    """Top-1 over a split in list order, with every prediction (index, label, pred)."""
    device = options.torch_device()
    model.eval()
    preds, labels, indices = [], [], []
    for index, images, target in batches.in_order(batch_size):
        with autocast(device, options.precision):
            logits = model(images)
        preds.append(logits.argmax(-1).cpu())
        labels.append(target.cpu())
        indices.append(index)
    pred, label = torch.cat(preds).numpy(), torch.cat(labels).numpy()
    top1 = 100.0 * float((pred == label).mean())
    return top1, {"index": torch.cat(indices).numpy(), "label": label, "pred": pred}


def write_predictions(path: Path, predictions: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {k: v.astype(np.int32) for k, v in predictions.items()}
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
