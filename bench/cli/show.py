"""`bench show RUN`: one run record, by folder or key prefix."""

from __future__ import annotations

import argparse
import json

from bench.cli.common import add_dirs, results_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="show one run record (a run folder, or a key prefix)")
    p.add_argument("run")
    p.add_argument("--json", action="store_true", help="print the whole record")
    add_dirs(p, results=True)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from bench import api

    _, record = api.find_run(args.run, results_dir(args))
    if args.json:
        print(json.dumps(record, indent=1, default=str))
        return 0
    run, metrics, params, cost = record["run"], record["metrics"], record["params"], record["cost"]
    metric = metrics.get("primary", "top1")
    score = f"{metrics[metric]:.2f}" if record["status"] == "completed" else record["status"]
    if metrics.get("failure"):
        score += f" ({metrics['failure']})"
    speed = (f"{(cost['train_images_per_s'] or 0):.0f} img/s" if "train_images_per_s" in cost
             else f"{(cost.get('train_tokens_per_s') or 0):.0f} target tokens/s")
    lines = [
        f"run {record['key']}  ({record['status']})",
        f"  task {run['task']}  method {run['method']}  stage {run['stage']}  seed {run['seed']}",
        f"  hparams {run['hparams']}",
        f"  optim {run['optim']}",
        f"  train on {'+'.join(run['train_splits'])}, {metrics['split']} {metric}: {score}",
        f"  trainable {params['trainable']:,} ({params['trainable_percent']:.3f}% of backbone), "
        f"head {params['head']:,}",
        f"  wall {cost['wall_s']:.1f} s on {cost['device']} ({cost['precision']}), "
        f"{speed}, peak memory {cost['peak_memory_bytes'] / 2**20:.0f} MiB",
        f"  created {record['created_at']}  commit {record['env'].get('git_commit')}",
    ]
    print("\n".join(lines))
    return 0
