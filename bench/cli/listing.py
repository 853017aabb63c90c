"""`bench list tasks|suites|methods [--params --task T --method M]`."""

from __future__ import annotations

import argparse
from typing import Any

from bench.cli.common import add_dirs, methods_dirs, names, tasks_dirs


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list tasks, suites or methods")
    p.add_argument("what", choices=["tasks", "suites", "methods"])
    p.add_argument("--params", action="store_true",
                   help="methods: trained and stored parameters on --task's backbone (built without weights)")
    p.add_argument("--task", default=None, help="task for --params (default: ViT-B/16 with 100 classes)")
    p.add_argument("--method", default=None,
                   help="methods for --params, comma-separated (default: every method); HF peft configs too, e.g. "
                        "'peft:LoraConfig(r=8,target_modules=[qkv])'")
    add_dirs(p)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench import registry

    if args.what == "methods" and args.params:
        return _method_params(args)
    if args.what == "methods":
        from bench.method_catalog import method_catalog

        rows = [[name, info.optimizer or "(task)", ", ".join(info.hparams) or "-", ", ".join(info.modalities),
                 info.description] for name, info in sorted(method_catalog(methods_dirs(args)).items())]
        print(tabulate(rows, headers=["method", "optimizer", "hyper-parameters", "modalities", "description"]))
        return 0
    files = registry.spec_files(tasks_dirs(args))
    table: list[list[object]] = []
    for name, entry in sorted(files.items()):
        if entry.is_suite != (args.what == "suites"):
            continue
        if entry.is_suite:
            suite = registry.load_suite(entry.path, name)
            table.append([name, len(suite.tasks), suite.description])
        else:
            task = registry.load_task(entry.path, name)
            table.append([name, task.group or "", task.modality, task.output_description, task.description])
    headers = ["suite", "tasks", "description"]
    if args.what == "tasks":
        headers = ["task", "group", "modality", "output", "description"]
    print(tabulate(table, headers=headers))
    return 0


def _method_params(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from bench import registry
    from bench.errors import BenchError
    from bench.params import count_parameters
    from bench.spec import DataSpec, ImageSpec, TaskSpec

    if args.task:
        task = registry.load_task_by_name(args.task, tasks_dirs(args))
    else:
        data = DataSpec(source="image_list", root="-", splits={s: "-" for s in ("train", "val", "test")},
                        num_classes=100, images=ImageSpec(resize=(224, 224)))
        task = TaskSpec(name="vit-b16 (100 classes)", data=data)
    rows, skipped, uncounted = [], [], []
    count = None
    chosen = sorted(registry.load_methods(methods_dirs(args)).items())
    if args.method:  # names as `bench run --method` takes them; `peft:` configs count under their stored names
        chosen = [(cls.name, cls) for cls in (registry.get_method(n, methods_dirs(args)) for n in names(args.method))]
    for name, cls in chosen:
        if task.modality not in cls.modalities:
            skipped.append(f"{name} ({', '.join(cls.modalities)} only)")
            continue
        fixed = task.protocol.methods[name].hparams if name in task.protocol.methods else {}
        try:
            count = count_parameters(task, cls, fixed)
        except BenchError as exc:  # e.g. No-share's init_text needs the tokenizer, absent offline: count the others
            uncounted.append(f"{name}: {exc}")
            continue
        rows.append([name, f"{count.trained:,}", f"{count.stored:,}", f"{count.trained_percent:.3f}",
                     f"{count.head:,}"])
    backbone = f" ({count.backbone:,} parameters)" if count is not None else ""
    print(f"{task.name}: backbone {task.backbone.model}{backbone}, {task.output_description}; "
          f"method defaults{' + task overrides' if args.task else ''}")
    print(tabulate(rows, headers=["method", "trained", "stored (inference)", "trained % of backbone", "head"],
                   disable_numparse=True))
    if skipped:
        print(f"\nNot applicable to {task.modality} tasks: {', '.join(skipped)}.")
    for line in uncounted:
        print(f"\nNot counted, {line}")
    _peft_line(task, [cls for _, cls in chosen])
    return 0


def _peft_line(task: Any, chosen: list[Any]) -> None:
    """HF peft hook: which `peft:` configs the table counts, and how to name one (with this backbone's modules)."""
    from bench.backbones import backbone_skeleton
    from bench.peft_methods import PeftMethod, module_names

    for cls in chosen:
        if issubclass(cls, PeftMethod):
            print(f"{cls.name} = peft:{cls.HParams().config}")
    modules = ", ".join(module_names(backbone_skeleton(task.backbone)))
    print(f"HF peft configs are methods too: --method 'peft:LoraConfig(r=8, target_modules=[...])' (docs/methods.md, "
          f"\"HF peft configs\"); module names on this backbone: {modules}.")
