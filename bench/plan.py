"""`bench run --dry-run`: what would run, which grid each method gets and from where, which data is missing, which
runs are recorded already and how long the others take (bench.estimate), without training anything."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.estimate import ASSUMED_FLOPS
from bench.progress import duration

if TYPE_CHECKING:
    from bench.request import RunRequest


def print_plan(request: RunRequest) -> None:
    from tabulate import tabulate

    from bench import api
    from bench.estimate import survey
    from bench.train.modality import modality_for

    plan = api.pairs(request)
    found = survey(request, plan, api.smoke_of(request))
    rows: list[list[object]] = []
    status_rows: list[list[object]] = []
    sources: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    sizes_of: dict[str, dict[str, int | None]] = {}
    language: dict[str, str] = {}
    smoke = api.smoke_of(request)
    for status in found.pairs:
        pair, settings = status.pair, status.settings
        task, method_cls = pair.task, pair.method
        modality = modality_for(task)
        if task.name not in sizes_of:
            sizes_of[task.name] = modality.split_sizes(task)
            if not modality.data_present(task):
                how = (f"prepared automatically by {task.data.prepare}" if task.data.prepare
                       else task.data.hint())
                missing.setdefault(how, []).append(f"{task.name}: {task.data.resolved_root()}")
        backbone = status.backbone
        sources.setdefault(settings.grid_source, []).append(f"{task.name}/{method_cls.name}")
        variant = ", ".join(part for part in (pair.variant.describe(), "smoke" if smoke else "") if part)
        name = method_cls.name + (f" ({variant})" if variant else "")
        examples = f"{status.train_examples:,}" if status.train_examples is not None else "?"
        rows.append([task.name, name, status.grid_runs, status.final_runs, status.epochs, settings.batch_size,
                     task.protocol.precision, grid_text(settings.grid), examples,
                     task.backbone.model + (f" ({backbone[0] / 1e6:.1f}M)" if backbone is not None else "")])
        estimate = status.estimate
        status_rows.append([task.name, name, status.planned, status.done, status.to_run,
                            duration(estimate.seconds) if status.to_run and estimate.seconds is not None
                            else "unknown" if status.to_run else "-",
                            "; ".join(part for part in (estimate.basis, *status.notes) if part)])
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
            for task_name, sizes in sizes_of.items():
                print(f"  {task_name}: " + ", ".join(f"{split} {size:,} -> {smoke.examples(size):,}"
                                                     if size is not None
                                                     else f"{split} (size not known yet) -> at most {smoke.limit}"
                                                     for split, size in sizes.items()))
    shown = {task_name: text for task_name, text in language.items() if text}
    if shown:
        print("\nLanguage protocol:")
        for task_name, text in shown.items():
            print(f"  {task_name}: {text}")
    print("\nGrids:")
    for source, pairs in sources.items():
        print(f"  {source}: {', '.join(pairs)}")
    scope = (f"; --shard {found.shard[0]}/{found.shard[1]}: this shard's runs (final runs whose point is not "
             "chosen yet are left to the shard that finds the grid complete)" if found.shard else "")
    print(f"\nRuns in {request.results_dir} (done: recorded already, skipped by the run; estimated time of the "
          f"runs to do on {found.device}{scope}):")
    unknown = sum(s.to_run for s in found.pairs if s.estimate.seconds is None)
    total = found.estimate().seconds
    total_text = ("-" if not found.to_run else "unknown" if total is None
                  else duration(total) + (f" + {unknown} runs unknown" if unknown else ""))
    print(tabulate([*status_rows, ["total", "", found.planned, found.done, found.to_run, total_text, ""]],
                   headers=["task", "method", "runs", "done", "to run", "estimate", "basis and notes"]))
    flops = [s.flops for s in found.pairs]
    vision = sum(f for f in flops if f is not None)
    partial = " (vision runs only; language runs have no FLOP count)" if None in flops and vision else ""
    tflop = f" The whole plan is about {vision / 1e12:.3g} TFLOP{partial}." if vision else ""
    print(f"\n{found.headline()}.{tflop} Times come from stored runs of this device where the store has them "
          "(same task and method, else the task's other methods scaled by the method's relative cost, else for "
          "vision the FLOP rate measured on other tasks), else from FLOPs at an assumed "
          f"{ASSUMED_FLOPS[found.device_kind] / 1e12:g} TFLOP/s (vision); language runs without stored runs are "
          "not estimated.")
    for how, places in missing.items():
        print(f"\nData not present yet for {len(places)} task(s):\n  " + "\n  ".join(places) + f"\n  -> {how}")


def grid_text(grid: dict[str, list[object]]) -> str:
    """A fixed axis shows its value, a searched one its size: 'base_lr=25 weight_decay=0.0001 num_tokens×6'."""
    return " ".join(f"{k}={v[0]:g}" if len(v) == 1 and isinstance(v[0], float) else
                    f"{k}={v[0]}" if len(v) == 1 else f"{k}×{len(v)}" for k, v in grid.items())

