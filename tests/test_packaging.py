"""Built-in tasks and methods must be found when bench is installed as a wheel, outside the source tree."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_carries_builtin_tasks_methods_and_assets(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(tmp_path / "dist")], check=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("peft_bench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"bench/_builtin/tasks/mini.yaml", "bench/_builtin/tasks/mini/_base.yaml",
            "bench/_builtin/methods/linear.py", "bench/_builtin/methods/full_ft.py",
            "bench/assets/mini_vit.safetensors", "bench/assets/mini_vit.json",
            "bench/assets/fgvc_splits/SHA256SUMS", "bench/assets/fgvc_splits/cub/train.json.gz",
            "bench/_builtin/reference/vpt_2022.yaml", "bench/_builtin/tasks/vtab/dtd.yaml"} <= names
    assert not any(n.startswith(("tests/", "results/")) for n in names)

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                    str(wheel)], check=True, timeout=300)
    probe = ("import bench, bench.registry as r; "
             "print(bench.__file__); print(sorted(r.load_methods())); print(r.resolve_tasks('mini')[0].tasks)")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=elsewhere,
                          env={**os.environ, "PYTHONPATH": str(target)}, timeout=120)
    assert done.returncode == 0, done.stderr
    where, methods, tasks = done.stdout.splitlines()
    assert where.startswith(str(target))
    assert "linear" in methods and "full_ft" in methods
    assert "mini/novel_shapes" in tasks
    assert "bench/_builtin/reference/vpetl_2024.yaml" in names

    # The installed `bench` works from any folder: validate every spec, then a smoke run of a mini task.
    env = {**os.environ, "PYTHONPATH": str(target), "BENCH_CACHE": str(tmp_path / "cache")}
    validate = subprocess.run([sys.executable, "-m", "bench.cli", "validate"], capture_output=True, text=True,
                              cwd=elsewhere, env=env, timeout=300)
    assert validate.returncode == 0, validate.stderr
    smoke = subprocess.run([sys.executable, "-m", "bench.cli", "run", "--task", "mini/novel_shapes", "--method",
                            "linear", "--stage", "final", "--set", "base_lr=0.05", "--seeds", "42", "--limit", "16",
                            "--epochs", "1", "--results", "runs"], capture_output=True, text=True, cwd=elsewhere,
                           env=env, timeout=300)
    assert smoke.returncode == 0, smoke.stderr
    assert "smoke" in smoke.stdout + smoke.stderr and list((elsewhere / "runs").rglob("run.json"))
