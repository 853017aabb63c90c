"""`bench analyze attention RUN`: where a trained vision run's attention goes (the paper's mixture-of-experts
reading of prefix tuning: prefix positions act as extra "experts" every query can attend to).

From a final run's stored trained parameters (trained.pt) and the first test images, it reports per layer and
head the share of attention mass on the prefix positions against the input tokens (mean over images and query
tokens), draws it as a heat map, and saves the CLS token's attention over the patches (mean over heads, last
layer) for a few images as pictures. Probabilities are computed explicitly in this analysis only.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.errors import BenchError
from bench.store import TRAINED, RunStore, atomic_write_bytes


@dataclass(frozen=True)
class AttentionReport:
    run: dict[str, Any]
    prefix_positions: list[int]  # per layer
    prefix_share: np.ndarray  # (layers, heads)
    cls_maps: np.ndarray  # (images, grid_h, grid_w), last layer, mean over heads
    images: int


def analyze(run_dir: Path, images: int = 16) -> AttentionReport:
    from bench import registry
    from bench.backbones.vit import PrefixAttention
    from bench.data.transforms import ImageBatches
    from bench.spec import TaskSpec
    from bench.train.model import PeftModel
    from bench.train.run import CACHES, RunOptions

    record = RunStore(run_dir.parent).load(run_dir)
    if record is None:
        raise BenchError(f"no run record in {run_dir}.", hint="Give a run folder (see `bench show`).")
    if record["status"] != "completed" or not (run_dir / TRAINED).is_file():
        raise BenchError(f"run {run_dir} has no stored trained parameters ({TRAINED}).",
                         hint="Attention analysis needs a completed final run of a PEFT method (runs made before "
                              "this feature, and full fine-tuning, do not keep their weights); re-run it.")
    task = TaskSpec.model_validate(record["task_spec"])
    run = record["run"]
    method_cls = registry.get_method(run["method"])
    model = PeftModel(CACHES.backbone(task), method_cls(method_cls.parse_hparams(run["hparams"])),
                      task.data.num_classes)
    model.load_state_dict(torch.load(run_dir / TRAINED, weights_only=True), strict=False)
    model.eval()
    split = CACHES.split(task, run["eval_split"], RunOptions())
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
        raise BenchError(f"the backbone of {run_dir} recorded no attention (not a ViT backbone?).")
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
    return AttentionReport(run=run, prefix_positions=positions, prefix_share=np.stack(shares),
                           cls_maps=cls.reshape(len(cls), grid, grid).numpy(), images=len(batch))


def write(report: AttentionReport, out_dir: Path) -> list[Path]:
    """attention.json, prefix-share.png (layers × heads) and cls-maps.png (a few images)."""
    import matplotlib
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.rc_context({"font.size": 8}):
        figure = Figure(figsize=(6, 4))
        axes = figure.add_subplot()
        shown = axes.imshow(report.prefix_share, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        axes.set_xlabel("head")
        axes.set_ylabel("layer")
        axes.set_title("share of attention on prefix positions")
        figure.colorbar(shown, ax=axes)
        written.append(_save_png(figure, out_dir / "prefix-share.png"))
        count = min(4, len(report.cls_maps))
        figure = Figure(figsize=(2.2 * count, 2.4))
        for i in range(count):
            axes = figure.add_subplot(1, count, i + 1)
            axes.imshow(report.cls_maps[i], cmap="magma")
            axes.set_axis_off()
            axes.set_title(f"test image {i}")
        figure.suptitle("CLS attention over patches (last layer, mean over heads)")
        written.append(_save_png(figure, out_dir / "cls-maps.png"))
    payload = {"run": report.run, "images": report.images, "prefix_positions": report.prefix_positions,
               "prefix_share": report.prefix_share.round(6).tolist(),
               "prefix_share_per_layer": report.prefix_share.mean(axis=1).round(6).tolist()}
    atomic_write_bytes(out_dir / "attention.json", (json.dumps(payload, indent=1) + "\n").encode())
    return [*written, out_dir / "attention.json"]


def _save_png(figure: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return path
