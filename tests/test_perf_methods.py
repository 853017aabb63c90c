"""`bench perf methods` (bench/perf/methods.py, projection.py, measured.py, record.py): each method measured alone and
reported as soon as it is measured, the task's backbone and hyper-parameters by default, the projected hours of a
suite's protocol counting every split, and the committed record with the machine's description. Numbers, not
timings."""

from __future__ import annotations

import gc
import json
import math
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch

from bench import registry
from bench.cli import main
from bench.errors import BenchError
from bench.perf.measured import measured_task
from bench.perf.methods import StepCost, measure, plans
from bench.perf.projection import PUBLISHED_SIZES, project_vision

VTAB_TEST_IMAGES = sum(PUBLISHED_SIZES[f"vtab/{name}"]["test"] for name in (
    "cifar100", "caltech101", "dtd", "oxford_flowers102", "oxford_iiit_pet", "svhn", "sun397", "patch_camelyon",
    "eurosat", "resisc45", "diabetic_retinopathy", "clevr_count", "clevr_dist", "dmlab", "kitti_dist",
    "dsprites_loc", "dsprites_ori", "smallnorb_azi", "smallnorb_ele"))


@pytest.fixture(autouse=True)
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Tiny models run fastest on one thread, and on a busy machine two threads wait on each other."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # `bench perf` then leaves torch's thread count alone
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def vision_task(name: str, profile: str | None = None) -> Any:
    return registry.load_task_by_name(name, profile=profile)


def vtab() -> list[Any]:
    return registry.resolve_tasks("vtab")[1]


def test_the_vtab_projection_counts_every_split_of_the_whole_protocol() -> None:
    projection = project_vision(vtab(), registry.get_method("deep_share"), train_per_s=1000.0, eval_per_s=4000.0,
                                setup_s=2.0)
    # per task: 40 grid points x 100 epochs x 800 images + 5 seeds x 100 epochs x 1000 images; val (200 images) at
    # epochs 10, 20, ..., 100 of each grid run; the full VTAB test set once per final run
    assert VTAB_TEST_IMAGES == 387_904  # the 19 VTAB test sets
    assert projection.train_images == 19 * (40 * 100 * 800 + 5 * 100 * 1000)
    assert projection.eval_images == 19 * 40 * 10 * 200 + 5 * VTAB_TEST_IMAGES
    assert projection.unknown_sizes == [] and projection.runs == 19 * (40 + 5)
    assert projection.sizes["vtab/dtd"] == {"train800": 800, "val200": 200, "train800val200": 1000, "test": 1880}
    seconds = projection.train_images / 1000 + projection.eval_images / 4000 + 19 * 45 * 2.0
    assert projection.hours == pytest.approx(seconds / 3600)
    assert projection.overhead_hours == pytest.approx(19 * 45 * 2.0 / 3600)


def test_linear_probing_is_costed_as_one_feature_pass_and_head_epochs() -> None:
    projection = project_vision(vtab(), registry.get_method("linear"), train_per_s=1000.0, eval_per_s=4000.0,
                                head_per_s=1e6)
    assert projection.train_images == 0 and projection.eval_images == 0
    # each split it reads once: train800, val200, train800val200, test
    assert projection.feature_images == 19 * (800 + 200 + 1000) + VTAB_TEST_IMAGES
    assert projection.head_examples == 19 * (40 * 100 * 800 + 5 * 100 * 1000 + 40 * 10 * 200) + 5 * VTAB_TEST_IMAGES
    assert projection.hours == pytest.approx((projection.feature_images / 4000 + projection.head_examples / 1e6)
                                             / 3600)
    image_steps = project_vision(vtab(), registry.get_method("deep_share"), 1000.0, 4000.0)
    assert projection.hours < image_steps.hours / 50


def test_linear_probing_with_random_crops_trains_on_images() -> None:
    """FGVC crops and flips at random, so features cannot be cached: the head trains through the backbone."""
    cub = registry.load_task_by_name("fgvc/cub")
    projection = project_vision([cub], registry.get_method("linear"), 1000.0, 4000.0)
    assert projection.feature_images == 0
    assert projection.train_images == 100 * (36 * 5394 + 5 * 5394)  # 9 x 4 grid on train, 5 seeds on train
    assert projection.eval_images == 36 * 10 * 600 + 5 * 5794


def test_plans_use_the_task_protocol_not_the_method_defaults() -> None:
    classes = [registry.get_method(name) for name in ("deep_share", "simple_share", "full_ft", "no_share_shallow")]
    cub = {p.label: p for p in plans(vision_task("fgvc/cub"), classes)}
    assert cub["deep_share"].hparams == {"num_tokens": 20} and cub["simple_share"].hparams == {"num_tokens": 10}
    assert cub["no_share_shallow"].hparams == {"num_tokens": 200}
    assert {p.batch for p in cub.values()} == {64}
    paper = {p.label: p for p in plans(vision_task("vtab/dtd", "paper"), classes)}
    assert paper["full_ft"].batch == 384 and paper["deep_share"].batch == 128
    assert paper["full_ft"].optimizer == "adamw" and paper["deep_share"].optimizer == "sgd"
    assert {p.batch for p in plans(vision_task("vtab/dtd", "paper"), classes, 4)} == {4}


def test_the_default_backbone_is_the_tasks_own_with_random_weights() -> None:
    task = registry.load_task_by_name("vtab/dtd")
    real, note = measured_task(task, "task")
    assert real.backbone.model == "vit_base_patch16_224.orig_in21k" and real.backbone.model_kwargs == {}
    assert real.backbone.pretrained is False and real.data.images.resize == (224, 224)
    assert "random weights" in note
    mini, note = measured_task(task, "mini")
    assert mini.backbone.model_kwargs["img_size"] == 32 and mini.data.images.resize == (32, 32)
    assert mini.protocol.batch_size == 128 and mini.name == "vtab/dtd" and "mini" in note
    with pytest.raises(BenchError, match="--backbone must be one of task, mini"):
        measured_task(task, "huge")
    from bench.cli import perf as perf_cli
    from bench.perf import measured

    assert perf_cli.CHOICES == measured.CHOICES  # the CLI's copy, kept so that `bench perf --help` imports no torch


def test_each_method_is_measured_alone_and_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.train.model import PeftModel

    task, _ = measured_task(registry.load_task_by_name("vtab/dtd"), "mini")
    classes = [registry.get_method(name) for name in ("no_share", "linear", "lora")]
    built: list[weakref.ref[PeftModel]] = []
    own_init = PeftModel.__init__

    def init(self: PeftModel, *args: Any, **kwargs: Any) -> None:
        own_init(self, *args, **kwargs)
        built.append(weakref.ref(self))

    monkeypatch.setattr(PeftModel, "__init__", init)
    seen: list[tuple[str, int, int]] = []

    def on_cost(cost: StepCost) -> None:
        gc.collect()
        seen.append((cost.method, len(built), sum(1 for ref in built if ref() is not None)))

    base, costs = measure(task, classes, batch=2, steps=1, device=torch.device("cpu"), warmup=0, on_cost=on_cost)
    # reported in order, as each is measured (one model built so far per report), none alive when its figures come out
    assert seen == [("no_share", 1, 0), ("linear", 2, 0), ("lora", 3, 0)]
    assert [c.method for c in costs] == ["no_share", "linear", "lora"]
    assert all(c.batch == 2 and c.seconds > 0 and c.reference_seconds > 0 and c.peak_memory_bytes is None
               for c in costs)
    assert costs[1].head_seconds is not None and costs[0].head_seconds is None
    # VTAB's No-share: the method's default num_tokens 20, E = 10 key/value positions x 4 layers x 64 wide
    assert costs[0].hparams == {} and costs[0].trainable == 10 * 4 * 2 * 64
    assert base == pytest.approx(sorted(c.reference_seconds for c in costs)[1])


@pytest.mark.gpu
def test_a_methods_peak_memory_does_not_depend_on_what_was_measured_before() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    task, _ = measured_task(registry.load_task_by_name("vtab/dtd"), "mini")
    classes = [registry.get_method(name) for name in ("full_ft", "no_share")]
    device = torch.device("cuda")
    _, first = measure(task, classes, 64, 2, device, warmup=1)
    _, second = measure(task, classes[::-1], 64, 2, device, warmup=1)
    peaks = {c.method: c.peak_memory_bytes for c in first}
    for cost in second:
        assert cost.peak_memory_bytes == pytest.approx(peaks[cost.method], rel=0.05)
    assert peaks["full_ft"] > peaks["no_share"]  # type: ignore[operator]


def test_perf_methods_prints_a_row_per_method_and_records_the_machine(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    record = tmp_path / "committed"
    assert main(["perf", "methods", "--backbone", "mini", "--method", "no_share,linear", "--steps", "1",
                 "--warmup", "0", "--batch", "4", "--perf-dir", str(tmp_path), "--record", str(record)]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines() if line.startswith(("no_share ", "linear "))]
    assert rows[:2] == ["linear", "no_share"]
    assert "each method measured alone" in out and "reference (frozen backbone, gradient to the input)" in out
    assert "projected vtab protocol (19 tasks, full grid, every final seed, every split)" in out
    assert f"70.3 M training images, {(19 * 40 * 10 * 200 + 5 * VTAB_TEST_IMAGES) / 1e6:.2f} M evaluated" in out
    assert "features of 425.9 k images once" in out and "left out" not in out
    figures = json.loads((tmp_path / "methods.json").read_text())
    assert set(figures["methods"]) == {"no_share", "linear"} and figures["projection"]["suite"] == "vtab"
    assert figures["projection"]["no_share"]["unknown_sizes"] == [] and figures["projection"]["no_share"]["tasks"] == 19
    assert figures["machine"]["cpu_cores"] >= 1 and figures["machine"]["device"] == "cpu"
    assert figures["methods"]["no_share"]["batch"] == 4 and figures["backbone"]["pretrained"] is False
    assert figures["command"].startswith("bench perf methods")
    slug = f"cpu-{figures['machine']['cpu_cores']}-cores"
    committed = json.loads((record / f"methods-{slug}.json").read_text())
    assert committed["methods"] == figures["methods"]
    markdown = (record / f"methods-{slug}.md").read_text()
    assert markdown.startswith("# `bench perf methods` on CPU") and "no GPU" in markdown
    assert "reference (frozen backbone" in markdown and f"methods-{slug}.json" in markdown


@pytest.mark.parametrize(("flags", "says"), [
    (["--batch", "0"], "--batch must be at least 1"),
    (["--steps", "-1"], "--steps must be at least 1"),
    (["--task", "nlg/e2e"], "'nlg/e2e' is a language task"),
])
def test_bad_perf_methods_input_exits_2(flags: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["perf", "methods", *flags]) == 2
    err = capsys.readouterr().err
    assert says in err and "\n\n" not in err.strip()


def test_an_unknown_backbone_choice_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["perf", "methods", "--backbone", "huge"])
    assert exit_.value.code == 2 and "invalid choice: 'huge'" in capsys.readouterr().err


def test_the_committed_figures_folder_is_not_ignored_by_git() -> None:
    import shutil
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", "results/measurements/perf/x.json"])
    assert done.returncode == 1, "results/measurements/perf/ must be committed, but git ignores it"


@pytest.mark.slow
def test_the_default_measures_vit_b16_at_224(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real backbone on the CPU, one image: slow, but the shapes are those of the VTAB protocol."""
    assert main(["perf", "methods", "--method", "deep_share", "--batch", "1", "--steps", "1", "--warmup", "0",
                 "--perf-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "vtab/cifar100: backbone vit_base_patch16_224.orig_in21k" in out and "input (224, 224)" in out
    figures = json.loads((tmp_path / "methods.json").read_text())
    assert figures["methods"]["deep_share"]["trainable"] > 1_000_000
    assert not math.isnan(figures["projection"]["deep_share"]["hours"])
