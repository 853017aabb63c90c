"""Pre-train the mini suite's tiny ViT on the generated shapes task and write bench/assets/mini_vit.*.

The architecture comes from tasks/mini/_base.yaml (one source of truth). The pre-training task
(12 shape classes, bench.data.generated.pretrain_arrays) differs from every mini-suite task, so the
frozen backbone carries transferable features without having seen the downstream data.

    python scripts/pretrain_mini_backbone.py            # ~3 minutes on 2 CPU cores
    python scripts/pretrain_mini_backbone.py --check    # retrain in memory; compare with the shipped file

Same machine, same thread count, same library versions -> bit-identical weights (sha256 in the JSON).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.backbones.vit import build_vit  # noqa: E402
from bench.data.generated import PRETRAIN_CLASSES, pretrain_arrays  # noqa: E402
from bench.spec import IMAGENET_MEAN, IMAGENET_STD, BackboneSpec, read_yaml  # noqa: E402
from bench.train.optim import lr_multiplier, set_lr  # noqa: E402

ASSET = ROOT / "bench" / "assets" / "mini_vit"
TRAIN_SEED, HELD_OUT_SEED = 0, 1


def mini_backbone_spec() -> BackboneSpec:
    section = read_yaml(ROOT / "tasks" / "mini" / "_base.yaml")["backbone"]
    return BackboneSpec(**{**section, "pretrained": False, "weights": None, "dropout": 0.0})


def normalise(images: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    return (images.permute(0, 3, 1, 2).float() - mean) / std


def train(examples: int, epochs: int, seed: int) -> tuple[dict[str, torch.Tensor], float, float]:
    """Returns (timm state dict of the backbone, held-out accuracy, seconds)."""
    torch.manual_seed(seed)
    images, labels = pretrain_arrays(examples, TRAIN_SEED)
    held_images, held_labels = pretrain_arrays(2000, HELD_OUT_SEED)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    backbone = build_vit(mini_backbone_spec())
    head = torch.nn.Linear(backbone.hidden_size, PRETRAIN_CLASSES)
    model = torch.nn.Sequential(backbone, head)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    batch = 128
    steps_per_epoch = math.ceil(examples / batch)
    total, warmup = epochs * steps_per_epoch, steps_per_epoch
    generator = torch.Generator().manual_seed(seed)
    started = time.time()
    step = 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(examples, generator=generator)
        for start in range(0, examples, batch):
            index = order[start : start + batch]
            inputs = normalise(x[index])
            flip = torch.rand(len(index), generator=generator) < 0.5
            inputs = torch.where(flip.view(-1, 1, 1, 1), inputs.flip(-1), inputs)
            set_lr(optimizer, 2e-3 * lr_multiplier(step, warmup, total))  # the protocol's schedule, per step
            loss = F.cross_entropy(model(inputs), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        accuracy = evaluate(model, held_images, held_labels)
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, held-out accuracy {accuracy:.2f}% "
              f"({time.time() - started:.0f} s)", flush=True)
    state = {k: v.detach().clone().contiguous() for k, v in backbone.vit.state_dict().items()}
    return state, accuracy, time.time() - started


@torch.no_grad()
def evaluate(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    logits = torch.cat([model(normalise(torch.from_numpy(images[i : i + 500]))) for i in range(0, len(images), 500)])
    return 100.0 * float((logits.argmax(-1).numpy() == labels).mean())


def serialise(state: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save(state, metadata={"format": "pt"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=24_000)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="fixed, so the weights are reproducible")
    parser.add_argument("--out", type=Path, default=ASSET, help="path without suffix")
    parser.add_argument("--check", action="store_true", help="retrain and compare with the shipped weights")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    state, accuracy, seconds = train(args.examples, args.epochs, args.seed)
    data = serialise(state)
    digest = hashlib.sha256(data).hexdigest()
    if args.check:
        shipped = json.loads(args.out.with_suffix(".json").read_text())
        same = digest == shipped["sha256"]
        print(f"sha256 {digest} ({'identical to' if same else 'DIFFERENT from'} the shipped file); "
              f"held-out accuracy {accuracy:.2f}% (shipped: {shipped['pretrain_heldout_accuracy']:.2f}%)")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".safetensors").write_bytes(data)
    import timm

    spec = mini_backbone_spec()
    meta = {
        "model": spec.model,
        "model_kwargs": spec.model_kwargs,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "pretrain_task": f"bench.data.generated.pretrain_arrays: {PRETRAIN_CLASSES} shape classes",
        "pretrain_examples": args.examples,
        "epochs": args.epochs,
        "seed": args.seed,
        "threads": args.threads,
        "pretrain_heldout_accuracy": accuracy,
        "train_seconds": round(seconds, 1),
        "sha256": digest,
        "command": "python scripts/pretrain_mini_backbone.py " + " ".join(sys.argv[1:]),
        "versions": {"torch": torch.__version__, "timm": timm.__version__, "numpy": np.__version__},
    }
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {args.out.with_suffix('.safetensors')} ({len(data) / 1024:.0f} KiB, sha256 {digest[:16]}...)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

