"""The Python API of peft-bench: plan, run, leaderboard, study, analyze, score, show, export, pack, import, as plain
typed functions.

The CLI (bench.cli), the local and Slurm workers (bench.ops) and the studies call these; nothing calls the CLI's
`main(argv)` internally. Example:

    from bench import api
    results = api.run(api.RunRequest(task="mini/novel_shapes", methods=("linear", "deep_share")))
    board = api.leaderboard("mini/novel_shapes")
    print(board.rows[0].method, board.rows[0].entries[0].value)

Errors in the user's input raise bench.errors.BenchError (one paragraph: file, field, fix).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bench.errors import BenchError
from bench.request import STAGES, RunRequest, default_results_dir

if TYPE_CHECKING:
    from bench.export import Export
    from bench.leaderboard.board import Board
    from bench.method import Method
    from bench.method_catalog import MethodInfo
    from bench.share import Imported, Packed
    from bench.spec import AnyTaskSpec, SuiteSpec
    from bench.train.config import RunOptions, Smoke
    from bench.train.protocol import TaskResult

log = logging.getLogger("bench")
__all__ = ["STAGES", "RunRequest", "default_results_dir"]  # re-exported: the request is part of the API


@dataclass(frozen=True)
class Variant:
    """One protocol variant of a study: a data fraction, a prompt length or a training-set size (None = usual)."""

    data_fraction: float | None = None
    num_tokens: int | None = None
    train_examples: int | None = None

    def describe(self) -> str:
        parts = []
        if self.data_fraction is not None:
            parts.append(f"data fraction {self.data_fraction:g}")
        if self.num_tokens is not None:
            parts.append(f"num_tokens {self.num_tokens}")
        if self.train_examples is not None:
            parts.append(f"{self.train_examples} training examples")
        return ", ".join(parts)

    def fixed_values(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """The values fixed for this variant's runs: the --set values, and its prompt length when it sweeps one."""
        return {**overrides, **({"num_tokens": self.num_tokens} if self.num_tokens is not None else {})}


@dataclass(frozen=True)
class Pair:
    """One protocol to run: a task, a method and a variant."""

    task: AnyTaskSpec
    method: type[Method]
    variant: Variant


# ---------------------------------------------------------------- names


def dirs(values: Sequence[str | Path]) -> tuple[Path, ...]:
    return tuple(Path(v) for v in values)


def resolve(
    name: str, tasks_dirs: Sequence[str | Path] = (), protocol: str | None = None
) -> tuple[SuiteSpec | None, list[AnyTaskSpec]]:
    """A task name gives that task; a suite name gives the suite and its tasks; `protocol` names the task
    profile to apply ('clean' or None: the tasks as written; 'paper': the official code's settings)."""
    from bench import registry

    return registry.resolve_tasks(name, dirs(tasks_dirs), protocol)


def methods(names: Sequence[str], methods_dirs: Sequence[str | Path] = (),
            known: dict[str, MethodInfo] | None = None) -> list[type[Method]]:
    """Method classes by name; ("all",) gives every registered method. A name no method has is refused from the
    catalog (`known`, read here when not given), before any method file (and torch) is imported."""
    from bench import registry
    from bench.method_catalog import method_catalog
    from bench.peft_spec import PREFIX as PEFT_PREFIX
    from bench.peft_spec import is_peft_method

    known = method_catalog(dirs(methods_dirs)) if known is None else known
    for name in names:
        if name != "all" and name not in known and not name.startswith(PEFT_PREFIX) and not is_peft_method(name):
            raise registry.unknown_method(name, list(known))  # peft: configs and their stored names: built on demand
    if tuple(names) == ("all",):
        return list(registry.load_methods(dirs(methods_dirs)).values())
    return [registry.get_method(name, dirs(methods_dirs)) for name in names]


def validate(tasks_dirs: Sequence[str | Path] = (), methods_dirs: Sequence[str | Path] = ()) -> tuple[int, int, int]:
    """Load every task and suite file and every method file (unless unchanged since it last imported cleanly, see
    bench.method_catalog); returns (tasks, suites, methods). Raises on the first problem."""
    from bench import registry

    files = registry.spec_files(dirs(tasks_dirs))
    tasks = suites = 0
    for name, entry in sorted(files.items()):
        if entry.is_suite:
            registry.resolve_tasks(name, dirs(tasks_dirs))
            suites += 1
        else:
            registry.load_task(entry.path, name)
            tasks += 1
    from bench.method_catalog import method_catalog

    return tasks, suites, len(method_catalog(dirs(methods_dirs)))


# ---------------------------------------------------------------- planning and running


def smoke_of(request: RunRequest) -> Smoke | None:
    """The request's smoke settings (--limit / --epochs), None for protocol runs."""
    from bench.train.config import Smoke

    if request.limit is None and request.epochs is None:
        return None
    return Smoke(request.limit, request.epochs)


def check_smoke(request: RunRequest) -> None:
    """--limit and --epochs are positive whole numbers."""
    for flag, value in (("--limit", request.limit), ("--epochs", request.epochs)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise smoke_value_error(flag, value)


def refuse_bad_set_values(request: RunRequest, tasks: Sequence[AnyTaskSpec], known: dict[str, MethodInfo]) -> None:
    """--set values that a named method's hyper-parameters refuse, found from the method catalog (`known`) before
    any method file (and torch) is imported; check_plan checks every value again with the methods' own classes."""
    if not request.overrides:
        return
    from bench.method_catalog import refuse_bad_values

    modalities = {task.modality for task in tasks}
    named = ([n for n, info in known.items() if modalities & set(info.modalities)]
             if tuple(request.methods) == ("all",) else [n for n in request.methods if n in known])
    for name in named:
        refuse_bad_values(known[name], request.overrides, "--set")


def smoke_value_error(flag: str, value: object) -> BenchError:
    """The one error for a bad --limit / --epochs value, whether the CLI or the API found it."""
    return BenchError(
        f"{flag} must be a positive whole number, got {value!r}.",
        hint="e.g. --limit 32 --epochs 1 (a smoke run: a quick check, kept apart from the protocol's runs).",
    )


def pairs(request: RunRequest) -> list[Pair]:
    """Every (task, method, variant) protocol of a request, checked before anything runs."""
    check_smoke(request)
    _, tasks = resolve(request.task, request.tasks_dirs, request.protocol)
    from bench.method_catalog import method_catalog

    known = method_catalog(dirs(request.methods_dirs))  # read once: the --set check and the name check share it
    refuse_bad_set_values(request, tasks, known)
    classes = methods(request.methods, request.methods_dirs, known)
    everything = tuple(request.methods) == ("all",)
    if request.num_tokens:
        if min(request.num_tokens) < 1:
            raise BenchError("--num-tokens values must be positive.")
        lacking = [m.name for m in classes if "num_tokens" not in m.HParams.model_fields]
        if lacking and not everything:
            raise BenchError(
                f"--num-tokens sweeps prompt / prefix lengths; {', '.join(lacking)} has no num_tokens.",
                hint="Use it with VPT or prefix methods (no_share, simple_share, deep_share, ...).",
            )
        classes = [m for m in classes if "num_tokens" in m.HParams.model_fields]
    if request.train_examples and min(request.train_examples) < 1:
        raise BenchError("--train-examples values must be positive.")
    fractions: list[float | None] = [None]
    if request.data_fractions:
        if not all(0.0 < f <= 1.0 for f in request.data_fractions):
            raise BenchError(
                f"--data-fraction values must lie in (0, 1], got {list(request.data_fractions)}.",
                hint="For example --data-fraction 0.1,0.25,0.5,1.0",
            )
        fractions = [f if f < 1.0 else None for f in request.data_fractions]
    lengths: list[int | None] = list(request.num_tokens) if request.num_tokens else [None]
    sizes: list[int | None] = list(request.train_examples) if request.train_examples else [None]
    variants = [Variant(f, n, e) for f in fractions for n in lengths for e in sizes]
    plan = [
        Pair(task, method_cls, variant)
        for variant in variants
        for task in tasks
        for method_cls in classes
        if not (everything and task.modality not in method_cls.modalities)
    ]
    check_plan(plan, request)
    for task, method_cls in {(p.task.name, p.method.name): (p.task, p.method) for p in plan}.values():
        check_task = getattr(method_cls, "check_task", None)  # HF peft hook: module names checked on the backbone
        if callable(check_task):
            check_task(task)
    return plan


def check_plan(plan: Sequence[Pair], request: RunRequest) -> None:
    """Everything the plan refers to exists and every --set value is valid, before anything runs; warn about
    --set values far outside a method's own grid (a learning rate for SGD given to an AdamW method, say), and
    about a --limit too small for a task (fewer examples than classes)."""
    from bench import registry
    from bench.train.config import OPTIM_KEYS
    from bench.train.modality import modality_for
    from bench.train.protocol import method_settings

    known = registry.load_methods(dirs(request.methods_dirs))
    for task in {p.task.name: p.task for p in plan}.values():
        registry.check_references(task, known, dirs(request.tasks_dirs))
        modality = modality_for(task)
        if request.limit is not None and (why := modality.smoke_warning(task, request.limit)):
            log.warning("%s", why)
        if request.compile and "--compile" not in modality.variants:
            raise BenchError(
                f"--compile does not apply to {modality.name} tasks such as '{task.name}': their runs train and "
                "decode eager, and a record must not say compiled when eager ran.",
                field="--compile",
                hint="Leave --compile out for this task (tasks whose runs compile say so in each record's "
                "cost.compile).",
            )
        fixed = task.protocol.precision
        if request.precision is not None and fixed not in ("auto", request.precision):
            raise BenchError(
                f"--precision {request.precision} contradicts task '{task.name}', whose protocol fixes "
                f"precision {fixed} (profile '{task.profile}').",
                field="protocol.precision",
                hint="Leave --precision out (the task decides), or use a profile without a fixed precision.",
            )
    for name in OPTIM_KEYS:
        value = request.overrides.get(name)
        if value is not None and (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or value < 0
            or (name == "base_lr" and value == 0)
        ):
            kind = "positive" if name == "base_lr" else "non-negative"
            raise BenchError(
                f"--set {name}={value!r}: {name} must be a {kind} number.",
                field="--set",
                hint="e.g. --set base_lr=0.5 --set weight_decay=0.001",
            )
    warned: set[tuple[str, str]] = set()
    for pair in plan:
        fields = pair.method.HParams.model_fields
        pair.method.parse_hparams({k: v for k, v in request.overrides.items() if k in fields}, "--set")
        if pair.variant.num_tokens is not None:
            pair.method.parse_hparams({"num_tokens": pair.variant.num_tokens}, "--num-tokens")
        own = method_settings(pair.task, pair.method).grid
        for name, value in request.overrides.items():
            values = [v for v in own.get(name, []) if isinstance(v, int | float) and not isinstance(v, bool) and v > 0]
            if (name, pair.method.name) in warned or not values or not isinstance(value, int | float) or value <= 0:
                continue
            if value > 10 * max(values) or value < min(values) / 10:
                warned.add((name, pair.method.name))
                log.warning(
                    "--set %s=%g is far outside %s's own grid on %s (%s); every method gets it. Is that meant?",
                    name,
                    value,
                    pair.method.name,
                    pair.task.name,
                    ", ".join(f"{v:g}" for v in values),
                )


def run_options(request: RunRequest, progress: bool = False) -> RunOptions:
    from bench.train.config import RunOptions
    """How this process runs the request: the device (refusing a silent CPU fall back), precision, TF32, compile."""
    from bench.train.device import announce_cpu, configure_threads, default_device, default_precision, effective_tf32

    configure_threads()
    device = default_device(request.device)
    announce_cpu(request.device, device)
    if request.tf32 and device.type != "cuda":
        log.warning("--tf32 has no effect on the %s: the runs are true fp32 (and their keys say so)", device)
    precision = default_precision(request.precision, device.type)
    return RunOptions(
        device=device,
        precision=precision,
        checkpoint_interval_s=request.checkpoint_interval,
        progress=progress,
        compile="inductor" if request.compile else None,
        tf32=effective_tf32(request.tf32, device.type),
    )


def run_pair(pair: Pair, request: RunRequest, options: RunOptions) -> TaskResult:
    """The protocol of one pair (finished runs are read back, never repeated)."""
    from bench.store import RunStore
    from bench.train.device import task_precision
    from bench.train.protocol import Shard, run_protocol

    options = dataclasses.replace(
        options, precision=task_precision(pair.task.protocol.precision, options.precision, options.torch_device().type)
    )
    fixed = pair.variant.fixed_values(request.overrides)
    shard = Shard(*request.shard) if request.shard else None
    seeds = list(request.seeds) if request.seeds else None
    return run_protocol(
        pair.task,
        pair.method,
        RunStore(request.results_dir),
        options,
        request.stages,
        seeds,
        fixed,
        shard,
        request.grid_prune,
        pair.variant.data_fraction,
        pair.variant.train_examples,
        smoke_of(request),
    )


def refuse_missing_data(tasks: Sequence[AnyTaskSpec]) -> None:
    """Before hours of work: every task's data must be in place, or be made / fetched automatically."""
    from bench.train.modality import modality_for

    lacking = [(t, why) for t in dict((t.name, t) for t in tasks).values() if (why := modality_for(t).missing_data(t))]
    if len(lacking) == 1:
        task, why = lacking[0]
        raise BenchError(f"task '{task.name}': data not found ({why}).", field="data.root", hint=task.data.hint())
    if lacking:
        lines = "; ".join(f"{t.name} ({why})" for t, why in lacking)
        hints = " ".join(dict.fromkeys(t.data.hint() for t, _ in lacking))
        raise BenchError(
            f"{len(lacking)} tasks have no data: {lines}.",
            field="data.root",
            hint=f"{hints} `bench data status` shows every task's state.",
        )


@dataclass
class RunOutcome:
    """What `run` did: one result per pair (in plan order), and whether this process saw the plan finish."""

    results: list[tuple[Pair, TaskResult]]

    def summary_lines(self) -> list[str]:
        return [result.summary(pair.variant.describe()) for pair, result in self.results]


def run(request: RunRequest, *, workers: int = 1, progress: bool = False, track: str | None = None) -> RunOutcome:
    """Run the protocol of every pair of the request. With `workers` > 1, that many local worker processes share
    the plan through the run store first; this process then reads their records back. Each finished run's log
    line carries `[k/N]` and an ETA (bench.progress); with workers, each worker counts its own over the whole
    plan. `track` ('mlflow' or 'wandb') also logs each run trained here or by the workers (bench.track); a
    tracker that is not installed is refused before anything runs."""
    from bench.track import tracking as experiment_tracking

    with experiment_tracking(track):
        return _run(request, workers=workers, progress=progress)


def _run(request: RunRequest, *, workers: int, progress: bool) -> RunOutcome:
    from bench.estimate import plan_progress
    from bench.progress import tracking

    plan = pairs(request)
    refuse_missing_data([p.task for p in plan])
    counter = plan_progress(request, plan, smoke_of(request))
    options = run_options(request, progress=progress)  # the device is checked before any worker starts
    if workers > 1:
        from bench.ops import launch

        log.info("%d workers: each prefixes its lines with [worker i] and counts [k/N] over the whole plan", workers)
        code = launch.spawn_workers(request, workers)
        if code != 0:
            raise BenchError(
                f"{workers} workers ran; at least one failed (exit code {code}). Finished runs are "
                "stored; run the same command again to finish the others."
            )
        log.info("all %d workers finished; collecting the results", workers)
    log.info("run store: %s; device: %s (%s)", request.results_dir, options.device, options.precision)
    results: dict[int, TaskResult] = {}

    def step(index: int) -> bool:
        results[index] = run_pair(plan[index], request, options)
        # With --shard, the other shards' runs are someone else's work; otherwise wait for the processes (on any
        # host sharing the store) that hold runs of this plan, so any number of `bench run`s finish it between them.
        return results[index].complete or request.shard is not None

    from bench.ops import launch

    with tracking(counter):
        launch.work_until_done(
            list(range(len(plan))),
            step,
            offset=0,
            poll_s=request.poll_s,
            waiting=lambda left: log.info(
                "%d protocol(s) wait for runs held by other processes (`bench leases` shows them); checking again "
                "in %g s",
                len(left),
                request.poll_s,
            ),
        )
    return RunOutcome([(pair, results[i]) for i, pair in enumerate(plan)])


def run_worker(request: RunRequest, index: int, count: int) -> None:
    """One of `count` workers: pass over the plan from its own starting point until every run is recorded. Its
    `[k/N]` counts the whole plan (runs it trained and runs it found recorded by the others); its ETA assumes the
    `count` workers share what is left."""
    from bench.estimate import plan_progress
    from bench.ops import launch
    from bench.progress import tracking

    plan = pairs(request)
    refuse_missing_data([p.task for p in plan])
    options = run_options(request)
    log.info(
        "worker %d/%d; run store: %s; device: %s (%s)",
        index,
        count,
        request.results_dir,
        options.device,
        options.precision,
    )
    with tracking(plan_progress(request, plan, smoke_of(request), workers=count)):
        launch.work_until_done(
            plan, lambda pair: run_pair(pair, request, options).complete, offset=index, poll_s=request.poll_s
        )


# ---------------------------------------------------------------- reading results


def leaderboard(
    suite: str | None = None,
    *,
    results: str | Path | None = None,
    methods: Sequence[str] | None = None,
    reference: bool = False,
    test: Literal["bootstrap", "mcnemar", "randomization"] = "bootstrap",
    alpha: float = 0.05,
    resamples: int = 1000,
    plots: bool = False,
    tasks_dirs: Sequence[str | Path] = (),
    protocol: str = "clean",
    efficiency: Sequence[str] = (),
) -> Board:
    """The leaderboard of a suite or task (every task with runs when None), rebuilt from the run store, from the
    runs of one protocol (task profile: 'clean', or e.g. 'paper'); smoke runs are never shown. `efficiency`: opt-in
    efficiency-aware score columns, 'ppt' (V-PETL Bench) and/or 'pscp' (PEFT-Bench); none by default."""
    from bench import leaderboard as boards
    from bench.store import RunStore

    if not 0.0 < alpha < 1.0 or resamples < 1:
        raise BenchError("--alpha must lie in (0, 1) and --resamples be at least 1.")
    tasks, groups, name = None, None, "all"
    if suite:
        suite_spec, specs = resolve(suite, tasks_dirs)
        tasks = [t.name for t in specs]
        groups = suite_spec.groups if suite_spec is not None else None
        name = suite_spec.name if suite_spec is not None else specs[0].name
    store = RunStore(Path(results) if results else default_results_dir())
    references = None
    if reference:
        from bench.reference import load_references

        references = load_references()
    settings = boards.Settings(test=test, alpha=alpha, resamples=resamples)
    board = boards.build(
        store, name, tasks, _stored_names(methods) if methods else None, groups, references, settings, plots=plots,
        protocol=protocol, efficiency=efficiency,
    )
    if not any(row.block == "runs" and any(e.value is not None for e in row.entries) for row in board.rows):
        scope = f" for '{suite}'" if suite else ""
        scope += f" of the {protocol} protocol" if protocol != "clean" else ""
        aside = "; ".join(f"{n} {kind} runs" for kind, n in sorted(board.set_aside.items()))
        raise BenchError(
            f"no finished final runs in {store.root}{scope}" + (f" (set aside: {aside})." if aside else "."),
            hint="Run `bench run --task ... --method ...` first"
            + (f" (with --protocol {protocol})." if protocol != "clean" else "."),
        )
    return board


def _stored_names(methods: Sequence[str]) -> list[str]:
    """Method names as the store has them: a `peft:` config text becomes its stored name (bench.peft_spec)."""
    from bench.peft_spec import PREFIX, resolve

    return [resolve(name).name if name.startswith(PREFIX) else name for name in methods]


def find_run(run: str, results: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """A run folder, or the one stored run whose key starts with `run`: (folder, record)."""
    from bench.store import InvalidRecord, RunStore

    store = RunStore(Path(results) if results else default_results_dir())
    path = Path(run)
    record = RunStore.of_folder(path).load(path.resolve()) if path.is_dir() else None
    if record is not None:
        return path, record
    matches = [r for r in store.records() if r["key"].startswith(run)]
    refused = [folder for folder in store.rejected if folder.name.startswith(run)]
    if not matches and len(refused) == 1:  # say why it is not usable, not that it is missing
        raise InvalidRecord(refused[0], store.rejected[refused[0]])
    if len(matches) != 1:
        found = "no run matches" if not matches else f"{len(matches)} runs match"
        raise BenchError(
            f"{found} '{run}' in {store.root}.",
            hint="Give a run folder or a longer key prefix (keys are the run folder names).",
        )
    return Path(matches[0]["_dir"]), matches[0]


def leaderboard_run(task: str, method: str, seed: int | None = None, results: str | Path | None = None) -> Path:
    """The final run of a (task, method) that the leaderboard shows (and one of its seeds)."""
    from bench.leaderboard.collect import collect
    from bench.store import RunStore

    store = RunStore(Path(results) if results else default_results_dir())
    found = collect(store, [task], [method])
    cell = found.cells.get((task, method))
    if cell is None:
        reason = found.missing.get((task, method), "no runs")
        raise BenchError(
            f"no completed final run of {method} on {task} in {store.root} ({reason}).",
            hint=f"Run it first: `bench run --task {task} --method {method}`.",
        )
    chosen = cell.seeds[0] if seed is None else seed
    if chosen not in cell.seeds:
        raise BenchError(
            f"seed {chosen} is not among the final seeds of {method} on {task} ({', '.join(map(str, cell.seeds))}).",
            field="--seed",
        )
    return Path(cell.run_dirs[cell.seeds.index(chosen)])


@dataclass(frozen=True)
class Scored:
    task: str
    items: int
    references: str  # what the outputs were scored against
    report: Any  # bench.metrics.MetricReport


def score(
    task: str,
    predictions: Path,
    references: Path | None = None,
    split: str | None = None,
    tasks_dirs: Sequence[str | Path] = (),
) -> Scored:
    """Score one output per line with a language task's official metric suite."""
    from bench import registry
    from bench.metrics import read_e2e_references, read_lines
    from bench.metrics import score as score_texts
    from bench.train.modality import require

    spec = registry.load_task_by_name(task, dirs(tasks_dirs))
    require(spec, "language", "`bench score` scores generated text")
    hypotheses = read_lines(predictions)
    groups: list[str] | None = None
    if references is not None:
        refs = read_e2e_references(references)
        source = str(references)
    else:
        from bench.data.text import read_text_split

        chosen = split or spec.protocol.final_stage.eval
        items = read_text_split(spec.data, chosen, spec.name).items  # type: ignore[arg-type]
        refs = [list(i.references) for i in items]
        groups = [i.category for i in items] if any(i.category for i in items) else None
        source = f"{spec.name} {chosen} split"
    if len(hypotheses) != len(refs):
        raise BenchError(
            f"{len(hypotheses)} predictions for {len(refs)} reference groups ({source}).",
            file=predictions,
            hint="Give one line per item, in the order of the references (one per unique input).",
        )
    return Scored(spec.name, len(hypotheses), source, score_texts(spec.metric, hypotheses, refs, groups))


# ---------------------------------------------------------------- sharing results


def export(
    results: str | Path | None = None,
    *,
    task: str | None = None,
    methods: Sequence[str] | None = None,
    tasks_dirs: Sequence[str | Path] = (),
    methods_dirs: Sequence[str | Path] = (),
) -> Export:
    """Every trustworthy stored run (of a task or suite, of some methods) as one flat row; `.frame()` gives a
    pandas DataFrame, `.left_out` the records that failed their checks. `write_export` writes the files."""
    from bench.export import export_runs, method_filter, require_store, task_filter

    root = Path(results) if results else default_results_dir()
    require_store(root)
    return export_runs(root, task_filter(task, root, tasks_dirs), method_filter(methods, root, methods_dirs))


def write_export(table: Export, out: str | Path, formats: Sequence[str] = ("csv", "parquet", "jsonl")) -> list[Path]:
    """Write an export as <stem>.<format> (a folder given as `out` gets runs.<format>)."""
    from bench.export import write_export as write

    return write(table, out, formats)


def pack(
    archive: str | Path,
    results: str | Path | None = None,
    *,
    task: str | None = None,
    methods: Sequence[str] | None = None,
    tasks_dirs: Sequence[str | Path] = (),
    methods_dirs: Sequence[str | Path] = (),
) -> Packed:
    """Write the trustworthy runs of a store (or of a task / suite / some methods) to one archive to share."""
    from bench.export import method_filter, require_store, task_filter
    from bench.share import pack_runs

    root = Path(results) if results else default_results_dir()
    require_store(root)
    return pack_runs(root, Path(archive), task_filter(task, root, tasks_dirs),
                     method_filter(methods, root, methods_dirs))


def import_archive(
    archive: str | Path,
    results: str | Path | None = None,
    *,
    allow_other_code: bool = False,
    methods_dirs: Sequence[str | Path] = (),
) -> Imported:
    """Check the runs of an archive from `pack` and add those that pass to a store, never changing what is there;
    see bench.share.import_runs for what is refused."""
    from bench.share import import_runs

    root = Path(results) if results else default_results_dir()
    return import_runs(Path(archive), root, allow_other_code=allow_other_code, methods_dirs=methods_dirs)


# ---------------------------------------------------------------- studies and analyses


def _study_request(
    task: str,
    method_names: Sequence[str],
    results: str | Path | None,
    tasks_dirs: Sequence[str | Path],
    methods_dirs: Sequence[str | Path],
    protocol: str = "clean",
    **variant: Any,
) -> RunRequest:
    return RunRequest(
        task=task,
        protocol=protocol,
        methods=tuple(method_names),
        results=str(results) if results else None,
        tasks_dirs=tuple(map(str, tasks_dirs)),
        methods_dirs=tuple(map(str, methods_dirs)),
        **variant,
    )


def study_sample_efficiency(
    suite: str,
    method_names: Sequence[str],
    *,
    reference: str = "deep_share",
    fractions: Sequence[float] = (0.1, 0.25, 0.5, 1.0),
    results: str | Path | None = None,
    out: Path = Path("results/studies"),
    run_missing: bool = True,
    resamples: int = 1000,
    tasks_dirs: Sequence[str | Path] = (),
    methods_dirs: Sequence[str | Path] = (),
    protocol: str = "clean",
) -> tuple[Any, list[Path]]:
    """Score vs training fraction: runs what is missing (unless `run_missing` is False), then the report."""
    from bench.store import RunStore
    from bench.studies import sample_efficiency

    if reference not in method_names:
        raise BenchError(f"--reference {reference} is not among --methods ({', '.join(method_names)}).")
    methods(method_names, methods_dirs)
    suite_spec, specs = resolve(suite, tasks_dirs, protocol)
    request = _study_request(suite, method_names, results, tasks_dirs, methods_dirs, protocol,
                             data_fractions=tuple(fractions))
    if run_missing:
        run(request)
    name = suite_spec.name if suite_spec is not None else specs[0].name
    report = sample_efficiency.build(
        RunStore(request.results_dir),
        name,
        [t.name for t in specs],
        list(method_names),
        reference,
        list(fractions),
        resamples=resamples,
        protocol=protocol,
    )
    return report, sample_efficiency.write(report, out)


def study_prefix_length(
    suite: str,
    method_names: Sequence[str],
    lengths: Sequence[int],
    *,
    cost_batch: int = 8,
    cost_steps: int = 5,
    device: str | None = None,
    results: str | Path | None = None,
    out: Path = Path("results/studies"),
    run_missing: bool = True,
    tasks_dirs: Sequence[str | Path] = (),
    methods_dirs: Sequence[str | Path] = (),
    protocol: str = "clean",
) -> tuple[Any, list[Path]]:
    """Score, parameters and cost vs prompt / prefix length."""
    from bench.store import RunStore
    from bench.studies import prefix_length

    chosen = sorted(set(lengths))
    if not chosen or min(chosen) < 1:
        raise BenchError("--lengths must be positive integers, e.g. 2,10,20.")
    classes = {m.name: m for m in methods([*method_names, *(n for _, n, _ in prefix_length.SHARE_TYPES)], methods_dirs)}
    suite_spec, specs = resolve(suite, tasks_dirs, protocol)
    request = _study_request(suite, method_names, results, tasks_dirs, methods_dirs, protocol, num_tokens=tuple(chosen))
    if run_missing:
        run(request)
    name = suite_spec.name if suite_spec is not None else specs[0].name
    report = prefix_length.build(
        RunStore(request.results_dir), name, [t.name for t in specs], list(method_names), chosen, protocol
    )
    from bench.train.modality import of_modality

    vision = of_modality(specs, "vision")
    if vision:
        from bench.train.device import configure_threads, default_device, default_precision

        configure_threads()
        torch_device = default_device(device)
        prefix_length.measure_cost(
            report,
            vision[0],  # type: ignore[arg-type]
            classes,
            cost_batch,
            cost_steps,
            torch_device,
            default_precision(None, torch_device.type),
        )
    return report, prefix_length.write(report, out)


def study_init(
    task: str,
    method: str,
    words: Sequence[str],
    sizes: Sequence[int],
    *,
    seeds: Sequence[int] | None = None,
    results: str | Path | None = None,
    out: Path = Path("results/studies"),
    run_missing: bool = True,
    resamples: int = 1000,
    tasks_dirs: Sequence[str | Path] = (),
    methods_dirs: Sequence[str | Path] = (),
    protocol: str = "clean",
) -> tuple[Any, list[Path]]:
    """Random vs word-initialised prefixes at several training-set sizes (language tasks)."""
    from bench import registry
    from bench.store import RunStore
    from bench.studies import init

    if "init_text" not in registry.get_method(method, dirs(methods_dirs)).HParams.model_fields:
        raise BenchError(f"method '{method}' has no init_text hyper-parameter.", hint="Use --methods no_share.")
    from bench.train.modality import require

    spec = registry.load_task_by_name(task, dirs(tasks_dirs), protocol)
    require(spec, "language", "`bench study init` initialises language prefixes")
    chosen = sorted(set(sizes))
    if not chosen or chosen[0] < 1:
        raise BenchError("--examples must be positive integers, e.g. 50,100,200,500.")
    request = _study_request(
        spec.name,
        [method],
        results,
        tasks_dirs,
        methods_dirs,
        protocol,
        train_examples=tuple(chosen),
        seeds=tuple(seeds) if seeds else None,
    )
    if run_missing:
        for text in [None, *words]:
            overrides = {} if text is None else {"init_text": text}
            run(dataclasses.replace(request, overrides=overrides))
    report = init.build(RunStore(request.results_dir), spec.name, method, list(words), chosen, resamples=resamples,
                        protocol=protocol)
    return report, init.write(report, out)


def analyze_attention(run_dir: Path, examples: int = 16, out: Path | None = None) -> tuple[Any, list[Path]]:
    """Where a trained final run's attention goes (prefix share per layer and head; CLS maps for vision)."""
    from bench.studies import attention

    if examples < 1:
        raise BenchError("--examples must be at least 1.")
    report = attention.analyze(run_dir, examples)
    return report, attention.write(report, out or run_dir / "analysis")
