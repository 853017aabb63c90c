"""The one training loop: a run (task, method, hyper-parameters, seed, stage) trained once and written as an
immutable record, for every modality.

It owns epochs and steps, the learning rate of each step, resume (model, optimizer, history and every random
generator), checkpoint timing, the divergence check, periodic evaluation (grid val scores, best-epoch selection,
pruning), trained-parameter saving and the record. What differs between vision and language sits behind
bench.train.modality. An epoch's batches depend only on (seed, epoch), so a killed run continues exactly where it
stopped; a non-finite loss ends the run as 'diverged' (recorded, never raised), so a grid sweep goes on. A CUDA
out-of-memory error is retried once under the memory fallback (bench.train.memory); a second one ends the run as
'failed', recorded the same way, so no worker retries it the same way again.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench import track
from bench.leases import Holder, LeaseLost
from bench.method import Method
from bench.ops import faults
from bench.store import CHECKPOINT, TRAINED, RunStore, checksum_path, run_key
from bench.train.checkpoint import load_torch, restore_rng_state, rng_state, save_torch
from bench.train.config import RunConfig, RunOptions
from bench.train.device import reset_peak_memory, set_tf32
from bench.train.memory import FALLBACK, first_line, is_out_of_memory, release_memory
from bench.train.modality import modality_for
from bench.train.optim import set_lr
from bench.train.record import build_record

log = logging.getLogger("bench.run")

FRESH = "_fresh"
SAVE_TRAINED_MAX = 5_000_000  # final PEFT runs keep their trained parameters (prefix, head) when at most this many
StopRule = Callable[[int, float], bool]
# A NaN/inf loss stops the run at once on CPU; on a GPU the check (a host-device sync) runs every this many steps.
NAN_CHECK_EVERY = 20


def data_fingerprints(config: RunConfig, options: RunOptions) -> dict[str, str]:
    return modality_for(config.task).fingerprints(config.task, [*config.train_splits, config.eval_split], options)


def key_of(config: RunConfig, options: RunOptions) -> str:
    return run_key(config.identity(data_fingerprints(config, options)))


def execute_run(
    config: RunConfig,
    method_cls: type[Method],
    store: RunStore,
    options: RunOptions,
    selection: dict[str, Any] | None = None,
    should_stop: StopRule | None = None,
) -> dict[str, Any] | None:
    """Run once (or return the existing record). None when another live process holds the run.

    `selection` (how a final run's hyper-parameters were chosen) is stored in the record as provenance.
    A record produced by this call (not read from the store) carries FRESH = True, which is never stored.
    `should_stop(epoch, score)`, asked after each periodic evaluation, ends the run as "pruned" when it says so
    (--grid-prune).
    """
    identity = config.identity(data_fingerprints(config, options))
    key = run_key(identity)
    run_dir = store.run_dir(config.task.name, config.method, config.stage, key)
    existing = store.load(run_dir)
    if existing is not None:
        return existing
    with store.lock(run_dir) as holder:
        if holder is None:
            # Normal with --workers (they pass over the same plan): the caller moves on and checks again later.
            log.debug("%s: another process holds it (%s); moving on", config.describe(), run_dir)
            return None
        existing = store.load(run_dir)  # finished while we waited for the lease
        if existing is not None:
            return existing
        try:
            record = train_within_memory(config, method_cls, identity, key, run_dir, options, should_stop, holder)
            if selection is not None:
                record["selection"] = selection
            store.write(run_dir, record, holder)
        except LeaseLost:
            log.warning(
                "%s: another process took the run over (this one was paused past its lease); leaving "
                "it to that process",
                config.describe(),
            )
            return None
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
        checksum_path(run_dir / CHECKPOINT).unlink(missing_ok=True)
        track.log_run(record, store.root)  # --track: a copy of the stored record to MLflow / W&B (no-op without)
        return {**record, FRESH: True}


def train_within_memory(
    config: RunConfig,
    method_cls: type[Method],
    identity: dict[str, Any],
    key: str,
    run_dir: Path,
    options: RunOptions,
    should_stop: StopRule | None = None,
    holder: Holder | None = None,
) -> dict[str, Any]:
    """train(); after a CUDA out-of-memory error, once more under the memory fallback (it resumes from the last
    checkpoint, if any); after a second one, the record of a failed run. Both say what happened."""
    started, errors = time.time(), []
    for fallback in [True] if options.memory_fallback else [False, True]:
        attempt = dataclasses.replace(options, memory_fallback=fallback)
        try:
            record = train(config, method_cls, identity, key, run_dir, attempt, should_stop, holder)
        except Exception as exc:  # only out-of-memory errors are handled; the traceback is dropped at once
            if not is_out_of_memory(exc):
                raise
            errors.append(first_line(exc))
        else:
            if errors:
                record["cost"].update(oom_retries=len(errors), memory_fallback={"after": errors, "what": FALLBACK})
            return record
        release_memory()
        log.warning("out of memory: %s (%s)%s", config.describe(), errors[-1],
                    "" if fallback else "; retrying once with the memory fallback")
    backend, _ = compile_backend(options.compile, modality_for(config.task).variants)
    ran = dataclasses.replace(options, memory_fallback=True, compile=backend)
    return failed_record(config, method_cls, identity, key, ran, errors, time.time() - started)


def failed_record(
    config: RunConfig,
    method_cls: type[Method],
    identity: dict[str, Any],
    key: str,
    options: RunOptions,
    errors: list[str],
    wall_s: float,
) -> dict[str, Any]:
    """The record of a run that ran out of device memory even under the fallback: status 'failed' and the
    reason; final like a diverged run (delete its folder to try again, e.g. on a bigger GPU). Its parameter
    counts come from the model built on the CPU."""
    modality = modality_for(config.task)
    method = method_cls(method_cls.parse_hparams(config.hparams))
    model = modality.build_model(config, method, modality.pristine_backbone(config.task))
    reason = f"CUDA out of memory {len(errors)} times, the last under the memory fallback: {errors[-1]}"
    log.error("failed: %s (%s)", config.describe(), reason)
    metrics = {**modality.failed_metrics(config), "failure": reason}
    cost = {"wall_s": wall_s, "oom_retries": len(errors) - 1, "memory_fallback": {"after": errors, "what": FALLBACK}}
    return build_record(config, key, "failed", identity, metrics, [], model, {}, cost, options, None)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(
    config: RunConfig,
    method_cls: type[Method],
    identity: dict[str, Any],
    key: str,
    run_dir: Path,
    options: RunOptions,
    should_stop: StopRule | None = None,
    holder: Holder | None = None,
) -> dict[str, Any]:
    """Train, evaluate and describe one run; returns its record (the caller writes it)."""
    from tqdm import tqdm

    modality = modality_for(config.task)
    optim, device = config.optim, options.torch_device()
    started = time.time()
    data = modality.prepare(config, run_dir, options)
    backbone = modality.pristine_backbone(config.task)
    seed_everything(config.seed)
    method = method_cls(method_cls.parse_hparams(config.hparams))
    model = modality.build_model(config, method, backbone).to(device)
    data = modality.after_model(config, method, model, data, options)
    optimizer = modality.optimizer(model, optim)
    trainable = [p for p in model.parameters() if p.requires_grad]
    steps_per_epoch = modality.steps_per_epoch(data, optim)
    epochs, precision = optim["epochs"], config.precision
    # fp16 autocast needs loss scaling (what apex O1 / torch.cuda.amp did); bf16 and fp32 do not.
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    history: list[dict[str, Any]] = []
    start_epoch, step, resumed_from, elapsed_before = 0, 0, None, 0.0
    best: dict[str, Any] | None = None  # the best epoch so far, when the modality reports the best, not the last
    checkpoint_path = run_dir / CHECKPOINT
    state = load_torch(checkpoint_path, device)
    if state is not None:
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        restore_rng_state(state["rng"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        history, start_epoch = list(state["history"]), int(state["epoch"]) + 1
        step, best = int(state.get("step", start_epoch * steps_per_epoch)), state.get("best")
        resumed_from, elapsed_before = start_epoch, float(state["elapsed"])
        log.info("resuming %s at epoch %d", config.describe(), start_epoch)

    if device.type == "cuda":
        set_tf32(config.tf32)
    backend, skipped = compile_backend(options.compile, modality.variants)
    if backend:
        # Dynamo caches per module instance; after recompile_limit new models it would silently run eager while
        # the record says compiled. A reset per run compiles each run's model afresh.
        torch._dynamo.reset()
    # The compiled module shares the model's parameters; state dicts and checkpoints keep using `model`.
    net: Any = torch.compile(model, backend=backend) if backend else model
    check_every = 1 if device.type == "cpu" else NAN_CHECK_EVERY
    totals: dict[str, float] = {}
    train_seconds, train_examples = 0.0, 0
    last_checkpoint = time.time()
    status = "completed"
    reset_peak_memory(device)
    bar = tqdm(
        range(start_epoch, epochs),
        desc=config.describe()[:60],
        disable=not options.progress,
        leave=False,
        initial=start_epoch,
        total=epochs,
        unit="epoch",
    )
    for epoch in bar:
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        model.train()
        tick = time.time()
        sums: dict[str, torch.Tensor] = {"loss": torch.zeros((), device=device)}
        nonfinite = torch.zeros((), device=device, dtype=torch.bool)
        examples, lr = 0, 0.0
        for index, batch in enumerate(modality.batches(data, optim, generator, device)):
            lr = modality.learning_rate(optim, epoch, step, steps_per_epoch)
            set_lr(optimizer, lr)
            result = modality.step(net, data, batch, precision, device)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(result.loss).backward()
            if optim.get("grad_clip") is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(trainable, optim["grad_clip"])
            scaler.step(optimizer)
            scaler.update()
            faults.point("train_step")
            step += 1
            loss = result.loss.detach()
            sums["loss"] += loss * result.examples
            for name, total in result.sums.items():
                sums[name] = sums.get(name, torch.zeros((), device=device, dtype=total.dtype)) + total
            examples += result.examples
            nonfinite |= ~torch.isfinite(loss)
            if (index + 1) % check_every == 0 and bool(nonfinite):
                break  # diverged: the epoch's mean loss is non-finite, recorded below
        train_seconds += time.time() - tick
        train_examples += examples
        epoch_sums = {name: float(total) for name, total in sums.items()}
        for name, summed in epoch_sums.items():
            totals[name] = totals.get(name, 0.0) + summed
        entry = modality.epoch_entry(epoch, lr, epoch_sums, examples)
        if not np.isfinite(entry["train_loss"]):
            entry["train_loss"] = None
            history.append(entry)
            status = "diverged"
            log.warning("diverged: %s (non-finite loss at epoch %d)", config.describe(), epoch)
            break
        last = epoch == epochs - 1
        evaluation = modality.periodic_evaluation(net, data, config, epoch, last, options)
        if evaluation is not None:
            entry.update(evaluation.entry)
            score = evaluation.score
            if modality.keeps_best_epoch(config) and score is not None and (best is None or score > best["score"]):
                best = {"epoch": epoch, "score": score, "state": model.trainable_state(copy=True)}
            # Asked at every evaluation (the pruner records each report); its answer counts before the end.
            if should_stop is not None and score is not None and should_stop(epoch + 1, score) and not last:
                history.append(entry)
                status = "pruned"
                log.info("pruned: %s after epoch %d (score %.2f)", config.describe(), epoch, score)
                break
        history.append(entry)
        bar.set_postfix(loss=f"{entry['train_loss']:.3f}")
        if not last and time.time() - last_checkpoint >= options.checkpoint_interval_s:
            if holder is not None:
                holder.check()  # never write over the checkpoint of a process that took the run over
            save_torch(
                checkpoint_path,
                {
                    "model": model.trainable_state(),
                    "optimizer": optimizer.state_dict(),
                    "history": history,
                    "epoch": epoch,
                    "step": step,
                    "best": best,
                    "rng": rng_state(),
                    **({"scaler": scaler.state_dict()} if scaler.is_enabled() else {}),
                    "elapsed": elapsed_before + time.time() - started,
                },
            )
            last_checkpoint = time.time()
    bar.close()

    if status == "completed":
        chosen_epoch = epochs - 1
        if best is not None:
            model.load_state_dict(best["state"], strict=False)
            chosen_epoch = best["epoch"]
        metrics = modality.final_evaluation(net, data, config, run_dir, options, chosen_epoch)
        if config.stage == "final" and not method.trains_backbone and model.method_trainable <= SAVE_TRAINED_MAX:
            save_torch(run_dir / TRAINED, model.trainable_state())  # the evaluated state, for analyses
    else:
        metrics = {**modality.failed_metrics(config), f"{status}_at_epoch": history[-1]["epoch"]}
    cost = {
        "wall_s": elapsed_before + time.time() - started,
        **modality.throughput(totals, train_seconds, train_examples),
        **({"compile_skipped": skipped} if skipped else {}),
    }
    ran = dataclasses.replace(options, compile=backend)  # the record says what ran, not what was asked
    return build_record(
        config, key, status, identity, metrics, history, model, modality.data_summary(data), cost, ran, resumed_from
    )


def compile_backend(requested: str | None, supported: dict[str, str]) -> tuple[str | None, str | None]:
    """(the torch.compile backend a run uses, why --compile was not applied): a modality that does not list
    --compile among its run options trains eager, and its record says so."""
    if requested and "--compile" not in supported:
        return None, f"--compile {requested} asked, but this modality runs eager (its runs are never compiled)"
    return requested, None
