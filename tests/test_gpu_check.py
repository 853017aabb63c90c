"""scripts/gpu_check.sh, the prepared GPU check, run end to end at its tiny size on the CPU, so that it cannot rot
before a GPU is lent; and its loud failures (one `gpu-check: FAILED` line, non-zero exit)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"

def _figures_module() -> ModuleType:
    """scripts/gpu_check/figures.py, which knows the keys a complete summary holds."""
    spec = importlib.util.spec_from_file_location("gpu_check_figures", ROOT / "scripts" / "gpu_check" / "figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


figures = _figures_module()

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="the check is a bash script that needs coreutils' timeout")


def gpu_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=170,
                          env={**os.environ, "GPU_CHECK_SIZE": "tiny", "GPU_CHECK_OUT": str(tmp_path / "out"),
                               "TMPDIR": str(tmp_path), **env})


@pytest.mark.slow
def test_the_tiny_check_writes_every_figure(tmp_path: Path) -> None:
    done = gpu_check(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "tiny-cpu.json").read_text())
    assert figures.missing(summary) == []
    assert summary["complete"] is True and summary["schema_version"] == figures.SCHEMA_VERSION
    check = summary["check"]
    assert (check["machine"], check["size"], check["image_size"], check["batch"]) == ("tiny-cpu", "tiny", 32, 8)
    assert "random (pretrained: false)" in check["weights"]
    for precision in ("bf16", "fp32"):
        measured = summary["methods"][precision]["per_method"]
        assert set(measured) == {"linear", "deep_share"}
        assert all(f["train_images_per_s"] > 0 and f["projected_hours"] > 0 for f in measured.values())
        assert summary["data"][precision]["cached_images_per_s"] > 0
    assert summary["projection"]["suite"] == "vtab" and summary["projection"]["tasks"] == 19
    assert set(summary["bf16_over_fp32"]) == {"linear", "deep_share"}
    smoke = summary["smoke"]
    assert (smoke["method"], smoke["limit"], smoke["epochs"]) == ("deep_share", 32, 1)
    assert smoke["wall_s"] > 0 and smoke["peak_memory_bytes"] > 0
    assert set(summary["steps"]) == {"perf methods bf16", "perf methods fp32", "perf data bf16", "perf data fp32",
                                     "smoke run deep_share"}
    # each figure is printed as it is measured, and the log keeps the whole output
    assert done.stdout.count("figure: ") >= 9
    log = (tmp_path / "out" / "tiny-cpu.log").read_text()
    assert "figure: smoke run deep_share" in log and "gpu-check: done" in log
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"tiny-cpu.json", "tiny-cpu.log"}
    assert not list(tmp_path.glob("gpu-check.*")), "the working folder is removed after a good run"


@pytest.mark.slow  # in CI's slow tier: keeps `make test` within 3 minutes on 2 cores
def test_a_failing_step_stops_the_check_with_one_line(tmp_path: Path) -> None:
    done = gpu_check(tmp_path, GPU_CHECK_METHODS="deepshare")
    assert done.returncode != 0
    failed = [line for line in done.stderr.splitlines() if line.startswith("gpu-check: FAILED")]
    assert len(failed) == 1 and failed[0].startswith("gpu-check: FAILED at 'perf methods bf16': exit "), done.stderr
    assert "Did you mean 'deep_share'" in done.stdout  # bench's own error, printed above that line
    assert not (tmp_path / "out").exists(), "no figure file from a failed check"


@pytest.mark.parametrize(("env", "says"), [
    ({"GPU_CHECK_SIZE": "huge"}, "GPU_CHECK_SIZE must be full or tiny"),
    ({"GPU_CHECK_BUDGET_S": "5"}, "budget is spent"),
    ({"GPU_CHECK_MACHINE": "../elsewhere"}, "is not a plain file name"),
])
def test_the_check_refuses_before_measuring(tmp_path: Path, env: dict[str, str], says: str) -> None:
    done = gpu_check(tmp_path, **env)
    assert done.returncode != 0
    assert says in done.stderr and "gpu-check: FAILED" in done.stderr


def fake_nvidia_smi(tmp_path: Path, body: str) -> str:
    """A PATH whose nvidia-smi runs `body`, so the full size's start can be checked without a GPU."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "nvidia-smi").write_text(f"#!/bin/sh\n{body}\n")
    (folder / "nvidia-smi").chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def test_the_full_size_names_its_files_after_the_gpu(tmp_path: Path) -> None:
    path = fake_nvidia_smi(tmp_path, "echo 'NVIDIA H200 NVL'")
    done = gpu_check(tmp_path, GPU_CHECK_SIZE="full", PATH=path, GPU_CHECK_BUDGET_S="5")  # stops before measuring
    assert f"gpu-check: full size on NVIDIA H200 NVL -> {tmp_path / 'out'}/nvidia-h200-nvl.json" in done.stdout
    assert done.returncode != 0 and "budget is spent" in done.stderr


def test_the_full_size_without_a_gpu_says_so(tmp_path: Path) -> None:
    done = gpu_check(tmp_path, GPU_CHECK_SIZE="full", PATH=fake_nvidia_smi(tmp_path, "exit 9"))
    assert done.returncode != 0
    assert done.stderr.strip() == "gpu-check: FAILED before starting: nvidia-smi could not name the GPU"


def test_the_full_size_task_is_vit_b16_at_224_with_random_weights() -> None:
    from bench import registry
    from bench.spec import TaskSpec

    task = registry.load_task_by_name("gpu_check/vit_b16", (ROOT / "scripts" / "gpu_check" / "tasks",))
    assert isinstance(task, TaskSpec)
    assert task.backbone.model.startswith("vit_base_patch16_224") and task.backbone.pretrained is False
    assert task.backbone.weights is None and task.backbone.model_kwargs == {}
    assert (task.data.images.resize, task.protocol.batch_size) == ((224, 224), 128)


def test_the_figures_folder_is_not_ignored_by_git() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "results/measurements/gpu-check/x.json"])
    assert done.returncode == 1, "results/measurements/gpu-check/ must be committed, but git ignores it"
