"""No silent fall back to the CPU, TF32 as an explicit option, and --compile recording what ran (bench.train.device,
bench.api.run_options / check_plan, bench.train.loop). GPUs are mocked: these run on a CPU-only machine."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from bench import api, registry
from bench.cli import main
from bench.errors import BenchError
from bench.store import RunStore
from bench.train import device as device_module
from bench.train.config import RunOptions, Smoke
from bench.train.device import default_device, effective_tf32, gpu_expected, set_tf32
from bench.train.loop import compile_backend
from bench.train.protocol import run_protocol

DRIVER_TOO_OLD = "The NVIDIA driver on your system is too old (found version 11040)."


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine whose CUDA is unusable: a driver too old for the installed wheel, no device nodes, no GPU env."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)

    def init() -> None:
        raise RuntimeError(DRIVER_TOO_OLD + "\nPlease update your GPU driver.")

    monkeypatch.setattr(torch.cuda, "init", init)
    monkeypatch.setattr(device_module, "nvidia_device_nodes", lambda: [])
    for name in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE"):
        monkeypatch.delenv(name, raising=False)


def test_what_says_a_gpu_was_expected() -> None:
    assert gpu_expected({}, []) is None
    assert gpu_expected({"CUDA_VISIBLE_DEVICES": ""}, []) is None  # every GPU hidden on purpose
    assert gpu_expected({"CUDA_VISIBLE_DEVICES": "-1"}, []) is None
    assert gpu_expected({"SLURM_GPUS_ON_NODE": "0"}, []) is None
    assert gpu_expected({"CUDA_VISIBLE_DEVICES": "2,3"}, []) == "CUDA_VISIBLE_DEVICES=2,3"
    assert gpu_expected({"CUDA_VISIBLE_DEVICES": "MIG-4f2c"}, []) == "CUDA_VISIBLE_DEVICES=MIG-4f2c"
    assert gpu_expected({"SLURM_JOB_GPUS": "0"}, []) == "SLURM_JOB_GPUS=0"
    assert gpu_expected({"SLURM_GPUS_ON_NODE": "2"}, []) == "SLURM_GPUS_ON_NODE=2"
    assert gpu_expected({}, ["/dev/nvidia1", "/dev/nvidia0"]) == "/dev/nvidia0 exists"


def test_the_default_is_the_cpu_when_nothing_expects_a_gpu(no_cuda: None) -> None:
    assert default_device(None) == torch.device("cpu")
    assert default_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("env", [{"CUDA_VISIBLE_DEVICES": "0"}, {"SLURM_STEP_GPUS": "1"}])
def test_the_default_refuses_the_cpu_when_a_gpu_was_expected(no_cuda: None, env: dict[str, str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(BenchError) as caught:
        default_device(None)
    text = str(caught.value)
    assert caught.value.field == "--device" and "--device cpu" in text
    assert "torch.cuda.is_available() is False" in text and DRIVER_TOO_OLD in text
    assert f"built for CUDA {torch.version.cuda}" in text and "Please update" not in text  # one line of torch's
    assert default_device("cpu") == torch.device("cpu")  # asked for on purpose


def test_the_default_refuses_the_cpu_when_device_nodes_exist(no_cuda: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "nvidia_device_nodes", lambda: ["/dev/nvidia0"])
    with pytest.raises(BenchError, match="/dev/nvidia0 exists"):
        default_device(None)


def test_asking_for_cuda_without_a_usable_cuda_says_why(no_cuda: None) -> None:
    for requested in ("cuda", "cuda:1"):
        with pytest.raises(BenchError) as caught:
            default_device(requested)
        assert f"--device {requested} asks for CUDA" in str(caught.value) and DRIVER_TOO_OLD in str(caught.value)


def test_a_cpu_only_build_is_named(no_cuda: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(BenchError, match="is a CPU-only build"):
        default_device("cuda")


def test_bench_run_refuses_in_one_paragraph_and_writes_nothing(no_cuda: None, tiny_tasks_dir: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-5d1e")
    args = ["run", "--task", "tiny/colors", "--method", "linear", "--tasks-dir", str(tiny_tasks_dir),
            "--results", str(tmp_path / "runs"), "--stage", "final", "--seeds", "42",
            "--set", "base_lr=0.1", "--set", "weight_decay=0"]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error:") and all(line.strip() for line in err)  # one paragraph, nothing else
    text = " ".join(err)
    assert "CUDA_VISIBLE_DEVICES=GPU-5d1e" in text and "torch.cuda.is_available() is False" in text
    assert not (tmp_path / "runs").exists()
    assert main([*args, "--device", "cpu"]) == 0  # the CPU on purpose


def test_a_default_cpu_run_says_so_once(no_cuda: None, tiny_tasks_dir: Path, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    request = api.RunRequest(task="tiny/colors", methods=("linear",), stages=("final",), seeds=(42,),
                             overrides={"base_lr": 0.1, "weight_decay": 0.0}, results=str(tmp_path / "runs"),
                             tasks_dirs=(str(tiny_tasks_dir),))
    with caplog.at_level(logging.WARNING, logger="bench"):
        api.run(request)
    said = [r.getMessage() for r in caplog.records if "no CUDA device" in r.getMessage()]
    assert said == ["no CUDA device: training on the CPU in fp32 (pass --device cpu to say so on purpose)"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bench"):
        api.run_options(dataclasses.replace(request, device="cpu"))
    assert not [r for r in caplog.records if "no CUDA device" in r.getMessage()]


# ---------------------------------------------------------------- TF32


def test_tf32_is_set_through_one_api_and_off_means_true_fp32() -> None:
    matmul = torch.backends.cuda.matmul
    new_api = hasattr(torch.backends.cudnn, "conv") and hasattr(torch.backends.cudnn.conv, "fp32_precision")
    try:
        set_tf32(True)
        assert (matmul.fp32_precision == "tf32") if new_api else matmul.allow_tf32
        set_tf32(False)
        assert (matmul.fp32_precision == "ieee") if new_api else not matmul.allow_tf32
        if new_api:
            assert torch.backends.cudnn.conv.fp32_precision == "ieee"  # cuDNN's own default is TF32: off too
        else:
            assert not torch.backends.cudnn.allow_tf32
    finally:
        set_tf32(False)
    assert effective_tf32(True, "cuda") and not effective_tf32(True, "cpu") and not effective_tf32(False, "cuda")


def test_tf32_joins_the_identity_only_when_on(tiny_tasks_dir: Path, tmp_path: Path) -> None:
    """Keys of runs without TF32 are what they were; a TF32 run has its own key and says so in its record."""
    task = registry.load_task_by_name("tiny/colors", (tiny_tasks_dir,))
    method = registry.get_method("linear")
    kwargs: dict[str, Any] = {"stages": ("final",), "seeds": [42], "overrides": {"base_lr": 0.1, "weight_decay": 0.0}}
    plain = run_protocol(task, method, RunStore(tmp_path / "plain"), RunOptions(), **kwargs).final[0]
    tf32 = run_protocol(task, method, RunStore(tmp_path / "tf32"), RunOptions(tf32=True), **kwargs).final[0]
    assert "tf32" not in plain["identity"] and "tf32" not in plain["run"] and plain["cost"]["tf32"] is False
    assert tf32["identity"]["tf32"] is True and tf32["run"]["tf32"] is True and tf32["cost"]["tf32"] is True
    assert tf32["key"] != plain["key"]
    assert {k: v for k, v in tf32["identity"].items() if k != "tf32"} == plain["identity"]


def test_tf32_on_the_cpu_is_ignored_aloud(tiny_tasks_dir: Path, tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    request = api.RunRequest(task="tiny/colors", methods=("linear",), device="cpu", tf32=True,
                             tasks_dirs=(str(tiny_tasks_dir),))
    with caplog.at_level(logging.WARNING, logger="bench"):
        options = api.run_options(request)
    assert options.tf32 is False and "--tf32 has no effect on the cpu" in caplog.text


def test_the_tf32_flag_reaches_the_request(tiny_tasks_dir: Path) -> None:
    from bench.cli import build_parser
    from bench.cli.run import request_of

    parser = build_parser()
    base = ["run", "--task", "tiny/colors", "--method", "linear"]
    assert request_of(parser.parse_args(base)).tf32 is False
    assert request_of(parser.parse_args([*base, "--tf32"])).tf32 is True
    assert request_of(parser.parse_args([*base, "--no-tf32"])).tf32 is False


# ---------------------------------------------------------------- --compile


def test_compile_is_refused_where_runs_would_run_eager() -> None:
    with pytest.raises(BenchError) as caught:
        api.pairs(api.RunRequest(task="mini/e2e", methods=("no_share",), compile=True))
    assert caught.value.field == "--compile" and "mini/e2e" in str(caught.value)
    api.pairs(api.RunRequest(task="mini/novel_shapes", methods=("linear",), compile=True))  # vision: fine


def test_a_run_records_the_backend_that_ran() -> None:
    assert compile_backend("inductor", {"--compile": "..."}) == ("inductor", None)
    assert compile_backend(None, {"--compile": "..."}) == (None, None)
    backend, why = compile_backend("inductor", {"--train-examples": "..."})
    assert backend is None and why is not None and "eager" in why


COMPILED_IN: list[str] = []  # the run (its description) during which the test backend was called
RUNNING: list[str] = []


def counting_backend(graph: Any, example_inputs: Any) -> Any:
    """A torch.compile backend that notes which run it compiled for and runs the graph as traced."""
    COMPILED_IN.append(RUNNING[-1] if RUNNING else "?")
    return graph.forward


def test_every_compiled_run_compiles_its_own_model(tiny_tasks_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   request: pytest.FixtureRequest) -> None:
    """Dynamo caches per model instance and runs eager once recompile_limit is reached, silently: with a limit of
    1, every grid run after the first would run eager although its record said compiled. A reset per run makes
    every run compile (the backend is called during each run), and each record names the backend."""
    import torch._dynamo
    from torch._dynamo.backends.registry import list_backends, register_backend

    import bench.train.loop as loop

    if "bench_test_counting" not in list_backends(exclude_tags=()):
        register_backend(counting_backend, name="bench_test_counting")
    original = loop.train

    def tracked(config: Any, *args: Any, **kwargs: Any) -> Any:
        RUNNING.append(config.describe())
        return original(config, *args, **kwargs)

    monkeypatch.setattr(loop, "train", tracked)
    # Through torch's own config.patch: monkeypatch's undo leaves torch's config module broken (the name hidden).
    # The name differs between torch versions (newer: recompile_limit, with cache_size_limit an alias of it).
    limit = next(n for n in ("recompile_limit", "cache_size_limit") if hasattr(torch._dynamo.config, n))
    patch = torch._dynamo.config.patch(**{limit: 1})
    patch.__enter__()
    request.addfinalizer(lambda: patch.__exit__(None, None, None))
    COMPILED_IN.clear()
    RUNNING.clear()
    torch._dynamo.reset()
    task = registry.load_task_by_name("tiny/colors", (tiny_tasks_dir,))
    store = RunStore(tmp_path)
    run_protocol(task, registry.get_method("deep_share"), store, RunOptions(compile="bench_test_counting"),
                 stages=("grid",), overrides={"weight_decay": 0.0}, smoke=Smoke(limit=8, epochs=1))
    torch._dynamo.reset()
    assert len(RUNNING) == 2  # two grid runs (two learning rates)
    assert set(COMPILED_IN) == set(RUNNING)  # each run compiled its own model
    assert [r["cost"]["compile"] for r in store.records()] == ["bench_test_counting"] * 2
