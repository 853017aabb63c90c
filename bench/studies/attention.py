"""`bench analyze attention RUN`: where a trained run's attention goes (the paper's mixture-of-experts reading
of prefix tuning: prefix positions act as extra "experts" every query can attend to).

From a final run's stored trained parameters (trained.pt) it reports per layer and head the share of attention
mass on the prefix positions against the input tokens (mean over examples and query tokens) and draws it as a
heat map. Vision runs use the first test images and also save the CLS token's attention over the patches (mean
over heads, last layer) as pictures; language runs (GPT-2, BART: encoder self-, decoder self- and cross-attention
layers) use the first test items, teacher-forced on their first reference, one at a time so that no padding
enters the means. Probabilities are computed explicitly in this analysis only.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import BenchError
from bench.store import TRAINED, RunStore, atomic_write_bytes, stored_checksum

log = logging.getLogger("bench.studies.attention")


@dataclass(frozen=True)
class AttentionReport:
    run: dict[str, Any]
    layer_names: list[str]
    prefix_positions: list[int]  # per layer
    prefix_share: np.ndarray  # (layers, heads)
    cls_maps: np.ndarray | None  # vision: (images, grid_h, grid_w), last layer, mean over heads
    examples: int


def analyze(run_dir: Path, examples: int = 16) -> AttentionReport:
    """The attention report of one stored final run (vision or language)."""
    from bench.spec import task_from_record

    record = RunStore.of_folder(run_dir).load(run_dir.resolve())
    if record is None:
        raise BenchError(f"no run record in {run_dir}.", hint="Give a run folder (see `bench show`).")
    if record["status"] != "completed" or not (run_dir / TRAINED).is_file():
        raise BenchError(
            f"run {run_dir} has no stored trained parameters ({TRAINED}).",
            hint="Attention analysis needs a completed final run of a PEFT method (runs made before "
            "this feature, and full fine-tuning, do not keep their weights); re-run it.",
        )
    trained = _load_trained(run_dir, record)
    task = task_from_record(record["task_spec"])
    return ANALYSES[task.modality](record, task, trained, examples)


def _load_trained(run_dir: Path, record: dict[str, Any]) -> dict[str, torch.Tensor]:
    """trained.pt, checked against the checksum in its record (or beside it); a stored result is never deleted
    here: a mismatch is an error, and a file from before checksums existed is loaded with a warning."""
    path = run_dir / TRAINED
    data = path.read_bytes()
    expected = record.get("files", {}).get(TRAINED) or stored_checksum(path)
    if expected is None:
        log.warning("%s has no checksum (stored before checksums were kept); loading it unverified", path)
    elif hashlib.sha256(data).hexdigest() != expected:
        raise BenchError(
            f"{path} does not match its checksum: the stored trained parameters are damaged.",
            hint="Move the run folder out of the store and run the same `bench run` command again.",
        )
    state: dict[str, torch.Tensor] = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return state


def _method(run: dict[str, Any]) -> Any:
    from bench import registry

    method_cls = registry.get_method(run["method"])
    return method_cls(method_cls.parse_hparams(run["hparams"]))


def _analyze_vision(
    record: dict[str, Any], task: Any, trained: dict[str, torch.Tensor], images: int
) -> AttentionReport:
    from bench.backbones.vit import PrefixAttention
    from bench.data.transforms import ImageBatches
    from bench.train.config import RunOptions
    from bench.train.modality import modality_for
    from bench.train.model import PeftModel

    run = record["run"]
    vision: Any = modality_for(task)
    model = PeftModel(vision.pristine_backbone(task), _method(run), task.data.num_classes)
    model.load_state_dict(trained, strict=False)
    model.eval()
    split = vision.split(task, run["eval_split"], RunOptions())
    _, batch, _ = next(ImageBatches(split, task.data.images, torch.device("cpu")).in_order(images))
    layers = [m for m in model.backbone.modules() if isinstance(m, PrefixAttention)]
    for layer in layers:
        layer.record = []
    try:
        with torch.no_grad():
            model(batch)
    finally:
        probs = [layer.record[0] if layer.record else None for layer in layers]
        for layer in layers:
            layer.record = None
    if not probs or any(p is None for p in probs):
        raise BenchError(f"the backbone of run {record['key']} recorded no attention (not a ViT backbone?).")
    last = probs[-1]
    assert last is not None
    tokens = last.shape[-2]
    grid = round((tokens - model.backbone.num_prefix_tokens) ** 0.5)
    shares, positions = [], []
    for p in probs:
        assert p is not None
        prefix = p.shape[-1] - p.shape[-2]
        positions.append(int(prefix))
        shares.append(p[..., :prefix].sum(-1).mean(dim=(0, 2)).numpy())  # (heads,)
    first_patch = last.shape[-1] - tokens + model.backbone.num_prefix_tokens
    cls = last[:, :, 0, first_patch:].mean(dim=1)  # (images, patches)
    return AttentionReport(
        run=run,
        layer_names=[f"layer {i}" for i in range(len(probs))],
        prefix_positions=positions,
        prefix_share=np.stack(shares),
        cls_maps=cls.reshape(len(cls), grid, grid).numpy(),
        examples=len(batch),
    )


def _analyze_text(record: dict[str, Any], task: Any, trained: dict[str, torch.Tensor], items: int) -> AttentionReport:
    from bench.data.text import read_text_split
    from bench.train.modality import modality_for
    from bench.train.model import PeftModel
    from bench.train.text import TextBatcher

    run = record["run"]
    backbone = modality_for(task).pristine_backbone(task)
    model = PeftModel(backbone, _method(run))
    model.load_state_dict(trained, strict=False)
    model.eval()
    split = read_text_split(task.data, run["eval_split"], task.name)
    batcher = TextBatcher(backbone, task)
    examples = batcher.training_examples([(item.source, item.references[0]) for item in split.items[:items]])
    sums = torch.zeros(backbone.num_layers, backbone.num_heads, dtype=torch.float64)
    positions = [0] * backbone.num_layers
    backbone.attention_record = []
    try:
        with torch.no_grad():
            for ids, labels in examples:
                backbone.attention_record.clear()
                batch = {
                    "input_ids": torch.tensor([ids]),
                    "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
                    "labels": torch.tensor([labels]),
                }
                batcher.loss(model, batch, precision="fp32")  # one teacher-forced forward pass
                for layer, prefix, probs in backbone.attention_record:
                    positions[layer] = prefix
                    sums[layer] += probs[0, :, :, :prefix].sum(-1).mean(-1).double()  # (heads,)
    finally:
        backbone.attention_record = None
    if not any(positions):
        raise BenchError(
            f"run {record['key']} ({run['method']}) puts no prefix positions into attention, so there "
            "is no prefix share to measure.",
            hint="Analyse a run of a prefix method (no_share, simple_share, deep_share).",
        )
    names = [
        f"{stack} {i}"
        for stack, layers in zip(backbone.stack_names(), backbone.stacks(), strict=True)
        for i in range(len(layers))
    ]
    return AttentionReport(
        run=run,
        layer_names=names,
        prefix_positions=positions,
        prefix_share=(sums / max(1, len(examples))).float().numpy(),
        cls_maps=None,
        examples=len(examples),
    )


# One analysis per modality (the attention modules and the inputs differ).
ANALYSES = {"vision": _analyze_vision, "language": _analyze_text}


def write(report: AttentionReport, out_dir: Path) -> list[Path]:
    """attention.json, prefix-share.png (layers × heads) and, for vision, cls-maps.png (a few images)."""
    import matplotlib
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.rc_context({"font.size": 8}):
        layers = len(report.layer_names)
        figure = Figure(figsize=(6, max(3.0, 1.2 + 0.16 * layers)))
        axes = figure.add_subplot()
        shown = axes.imshow(report.prefix_share, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        axes.set_xlabel("head")
        axes.set_xticks(range(report.prefix_share.shape[1]))
        axes.set_yticks(range(layers), report.layer_names)
        axes.set_title("share of attention on prefix positions")
        figure.colorbar(shown, ax=axes)
        written.append(_save_png(figure, out_dir / "prefix-share.png"))
        if report.cls_maps is not None:
            count = min(4, len(report.cls_maps))
            figure = Figure(figsize=(2.2 * count, 2.4))
            for i in range(count):
                axes = figure.add_subplot(1, count, i + 1)
                axes.imshow(report.cls_maps[i], cmap="magma")
                axes.set_axis_off()
                axes.set_title(f"test image {i}")
            figure.suptitle("CLS attention over patches (last layer, mean over heads)")
            written.append(_save_png(figure, out_dir / "cls-maps.png"))
    payload = {
        "run": report.run,
        "examples": report.examples,
        "layers": report.layer_names,
        "prefix_positions": report.prefix_positions,
        "prefix_share": report.prefix_share.round(6).tolist(),
        "prefix_share_per_layer": report.prefix_share.mean(axis=1).round(6).tolist(),
    }
    atomic_write_bytes(out_dir / "attention.json", (json.dumps(payload, indent=1) + "\n").encode())
    return [*written, out_dir / "attention.json"]


def _save_png(figure: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return path
