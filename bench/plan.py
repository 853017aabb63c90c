"""`bench run --dry-run`: what would run, which grid each method gets and from where, which data is missing, and
a rough cost, without training anything."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.request import RunRequest

# Rough sustained training throughput used for the time estimate (FLOP/s); stated in the output.
ASSUMED_FLOPS = {"cuda": 150e12, "cpu": 50e9}


def print_plan(request: RunRequest) -> None:
    from tabulate import tabulate

    from bench import api
    from bench.train.modality import modality_for
    from bench.train.protocol import grid_points, method_settings

    device_kind = "cuda" if (request.device or "").startswith("cuda") else "cpu"
    if request.device is None:
        import torch

        device_kind = "cuda" if torch.cuda.is_available() else "cpu"
    rows: list[list[object]] = []
    sources: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    total_runs, total_flops, unknown_cost = 0, 0.0, False
    sizes_of: dict[str, dict[str, int | None]] = {}
    language: dict[str, str] = {}
    smoke = api.smoke_of(request)
    for pair in api.pairs(request):
        task, method_cls = pair.task, pair.method
        modality = modality_for(task)
        if task.name not in sizes_of:
            sizes_of[task.name] = modality.split_sizes(task)
            if not modality.data_present(task):
                how = (f"prepared automatically by {task.data.prepare}" if task.data.prepare
                       else task.data.hint())
                missing.setdefault(how, []).append(f"{task.name}: {task.data.resolved_root()}")
        sizes = sizes_of[task.name]
        overrides = dict(request.overrides)
        if pair.variant.num_tokens is not None:
            overrides["num_tokens"] = pair.variant.num_tokens
        settings = method_settings(task, method_cls, overrides)
        points = len(grid_points(settings))
        grid_runs = points if ("grid" in request.stages and points > 1) else 0
        final_runs = len(request.seeds or task.protocol.seeds) if "final" in request.stages else 0
        backbone = modality.backbone_cost(task)
        cost = backbone[1] if backbone is not None else None
        epochs = smoke.epochs if smoke is not None and smoke.epochs is not None else settings.epochs
        read = smoke.examples if smoke is not None else (lambda count: count)  # --limit: at most N per split read
        examples = 0
        for stage, runs in (("grid", grid_runs), ("final", final_runs)):
            spec = task.protocol.grid_stage if stage == "grid" else task.protocol.final_stage
            n_train = read(sum(sizes.get(s) or 0 for s in spec.train))
            examples += runs * epochs * n_train
            if cost is not None:
                total_flops += runs * (epochs * n_train * 3 * cost + read(sizes.get(spec.eval) or 0) * cost)
        unknown_cost |= cost is None
        total_runs += grid_runs + final_runs
        sources.setdefault(settings.grid_source, []).append(f"{task.name}/{method_cls.name}")
        variant = ", ".join(part for part in (pair.variant.describe(), "smoke" if smoke else "") if part)
        rows.append([task.name, method_cls.name + (f" ({variant})" if variant else ""), grid_runs, final_runs,
                     epochs, settings.batch_size, task.protocol.precision, grid_text(settings.grid),
                     f"{examples:,}",
                     task.backbone.model + (f" ({backbone[0] / 1e6:.1f}M)" if backbone is not None else "")])
        language.setdefault(task.name, modality.protocol_summary(task))
    print(f"protocol: {request.protocol}" + (" (the official code's settings; docs/parity.md)"
                                             if request.protocol == "paper" else ""))
    print(tabulate(rows, headers=["task", "method", "grid runs", "final runs", "epochs", "batch", "precision",
                                  "grid (axis=value: fixed; axis×n: searched on val)", "train examples",
                                  "backbone"]))
    if smoke is not None:
        print(f"\n{smoke.describe().capitalize()}: a quick check. Its runs have keys of their own and are marked "
              "smoke in their records: never benchmark results.")
        if smoke.epochs is not None:
            print(f"  epochs: {smoke.epochs} for every run (warm-up shortened in proportion)")
        if smoke.limit is not None:
            print(f"  examples: at most {smoke.limit} per split read (training = the union of its splits)")
            for name, sizes in sizes_of.items():
                print(f"  {name}: " + ", ".join(f"{split} {size:,} -> {smoke.examples(size):,}" if size is not None
                                                else f"{split} (size not known yet) -> at most {smoke.limit}"
                                                for split, size in sizes.items()))
    shown = {name: text for name, text in language.items() if text}
    if shown:
        print("\nLanguage protocol:")
        for name, text in shown.items():
            print(f"  {name}: {text}")
    print("\nGrids:")
    for source, pairs in sources.items():
        print(f"  {source}: {', '.join(pairs)}")
    seconds = total_flops / ASSUMED_FLOPS[device_kind]
    duration = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
    partial = " (vision runs only; language runs are not estimated)" if unknown_cost and total_flops else ""
    print(f"\n{total_runs} runs; about {total_flops / 1e12:.3g} TFLOP{partial}; roughly {duration} on {device_kind} "
          f"(at an assumed {ASSUMED_FLOPS[device_kind] / 1e12:g} TFLOP/s sustained). Finished runs are skipped.")
    for how, places in missing.items():
        print(f"\nData not present yet for {len(places)} task(s):\n  " + "\n  ".join(places) + f"\n  -> {how}")


def grid_text(grid: dict[str, list[object]]) -> str:
    """A fixed axis shows its value, a searched one its size: 'base_lr=25 weight_decay=0.0001 num_tokens×6'."""
    return " ".join(f"{k}={v[0]:g}" if len(v) == 1 and isinstance(v[0], float) else
                    f"{k}={v[0]}" if len(v) == 1 else f"{k}×{len(v)}" for k, v in grid.items())

