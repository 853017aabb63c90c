"""`bench run --dry-run`: what would run, which data it needs, and a rough cost, without training anything."""

from __future__ import annotations

from typing import Any

from bench.data.splits import split_file
from bench.method import Method
from bench.spec import AnyTaskSpec, TaskSpec, TextTaskSpec

# Rough sustained training throughput used for the time estimate (FLOP/s); stated in the output.
ASSUMED_FLOPS = {"cuda": 150e12, "cpu": 50e9}


def count_examples(task: TaskSpec, split: str) -> int | None:
    """Examples in a split, or None when the data is not there yet."""
    from bench.data.splits import _load_json, split_file

    path = split_file(task.data, split)
    if not path.is_file():
        return task.data.expected_sizes.get(split)
    if task.data.source == "vpt_json":
        return len(_load_json(path))
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def backbone_flops_per_image(task: TaskSpec) -> tuple[int, float]:
    """(parameter count, forward FLOPs per image) of the backbone, built on the meta device (no weights)."""
    import timm
    import torch

    kwargs: dict[str, Any] = {"num_classes": 0, **task.backbone.model_kwargs}
    with torch.device("meta"):
        model: Any = timm.create_model(task.backbone.model, pretrained=False, **kwargs)
    params = sum(p.numel() for p in model.parameters())
    grid = model.patch_embed.grid_size
    tokens = grid[0] * grid[1] + model.num_prefix_tokens
    return params, 2.0 * params * int(tokens)


def text_plan_rows(task: TextTaskSpec, method_classes: list[type[Method]], stages: tuple[str, ...],
                   seeds: list[int] | None, overrides: dict[str, Any], missing: dict[str, list[str]]
                   ) -> tuple[list[list[object]], int]:
    """Plan rows of a generation task (no FLOP estimate: sequence lengths are only known after tokenising)."""
    from bench.data.text import read_text_split
    from bench.errors import BenchError
    from bench.train.protocol import grid_points, method_settings

    sizes: dict[str, int | None] = {}
    for split in task.data.splits:
        try:
            sizes[split] = len(read_text_split(task.data, split, task.name).pairs)
        except BenchError:
            sizes[split] = None
    if any(v is None for v in sizes.values()):
        how = f"prepared automatically by {task.data.prepare}" if task.data.prepare else task.data.hint()
        missing.setdefault(how, []).append(f"{task.name}: {task.data.resolved_root()}")
    rows: list[list[object]] = []
    runs = 0
    for method_cls in method_classes:
        settings = method_settings(task, method_cls, overrides)
        points = len(grid_points(settings))
        grid_runs = points if ("grid" in stages and points > 1) else 0
        final_runs = len(seeds or task.protocol.seeds) if "final" in stages else 0
        pairs = sum(sizes[s] or 0 for s in task.protocol.final_stage.train) * settings.epochs * final_runs
        runs += grid_runs + final_runs
        rows.append([task.name, method_cls.name, grid_runs, final_runs, settings.epochs,
                     " ".join(f"{k}={len(v)}" for k, v in settings.grid.items()), f"{pairs:,} pairs",
                     task.backbone.model])
    return rows, runs


def print_plan(tasks: list[AnyTaskSpec], method_classes: list[type[Method]], stages: tuple[str, ...],
               seeds: list[int] | None, overrides: dict[str, Any], device: str | None,
               skip_foreign: bool = False) -> None:
    """`skip_foreign`: leave out methods that do not apply to a task's modality (`--method all`)."""
    from tabulate import tabulate

    from bench.train.protocol import grid_points, method_settings

    device_kind = "cuda" if (device or "").startswith("cuda") else "cpu"
    if device is None:
        import torch

        device_kind = "cuda" if torch.cuda.is_available() else "cpu"
    rows: list[list[object]] = []
    missing: dict[str, list[str]] = {}
    total_runs, total_flops = 0, 0.0
    for task in tasks:
        modality = "language" if isinstance(task, TextTaskSpec) else "vision"
        classes = [m for m in method_classes if not skip_foreign or modality in m.modalities]
        if isinstance(task, TextTaskSpec):
            text_rows, text_runs = text_plan_rows(task, classes, stages, seeds, overrides, missing)
            rows += text_rows
            total_runs += text_runs
            continue
        params, flops = backbone_flops_per_image(task)
        sizes = {s: count_examples(task, s) for s in task.data.splits}
        if not task.data.resolved_root().is_dir() or any(
                not split_file(task.data, s).is_file() for s in task.data.splits):
            how = f"prepared automatically by {task.data.prepare}" if task.data.prepare else (
                task.data.hint())
            missing.setdefault(how, []).append(f"{task.name}: {task.data.resolved_root()}")
        for method_cls in classes:
            settings = method_settings(task, method_cls, overrides)
            points = len(grid_points(settings))
            grid_runs = points if ("grid" in stages and points > 1) else 0
            final_runs = len(seeds or task.protocol.seeds) if "final" in stages else 0
            images = 0
            for stage, runs in (("grid", grid_runs), ("final", final_runs)):
                spec = task.protocol.grid_stage if stage == "grid" else task.protocol.final_stage
                n_train = sum(sizes[s] or 0 for s in spec.train)
                images += runs * settings.epochs * n_train
                total_flops += runs * (settings.epochs * n_train * 3 * flops + (sizes[spec.eval] or 0) * flops)
            total_runs += grid_runs + final_runs
            rows.append([task.name, method_cls.name, grid_runs, final_runs, settings.epochs,
                         " ".join(f"{k}={len(v)}" for k, v in settings.grid.items()), f"{images:,}",
                         f"{params / 1e6:.1f}M"])
    print(tabulate(rows, headers=["task", "method", "grid runs", "final runs", "epochs", "grid axes",
                                  "train examples", "backbone"]))
    seconds = total_flops / ASSUMED_FLOPS[device_kind]
    duration = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
    print(f"\n{total_runs} runs; about {total_flops / 1e12:.3g} TFLOP; roughly {duration} on {device_kind} "
          f"(at an assumed {ASSUMED_FLOPS[device_kind] / 1e12:g} TFLOP/s sustained). Finished runs are skipped.")
    for how, places in missing.items():
        print(f"\nData not present yet for {len(places)} task(s):\n  " + "\n  ".join(places) + f"\n  -> {how}")
