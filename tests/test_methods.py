"""Methods: exact parameter counts of reference §1.1, the equivalences that define the prefix variants,
dropout and caching details, and every method end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench import registry
from bench.backbones.vit import build_vit
from bench.errors import BenchError
from bench.spec import BackboneSpec, DataSpec, ImageSpec, TaskSpec
from bench.train.model import PeftModel

ALL = ["adapter", "bitfit", "deep_share", "deep_share_shallow", "full_ft", "ia3", "linear", "lora", "no_share",
       "no_share_shallow", "prompt_tuning", "simple_share", "simple_share_shallow", "vpt_deep", "vpt_shallow"]
TINY = BackboneSpec(model="vit_base_patch16_224", pretrained=False,
                    model_kwargs={"img_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 3, "num_heads": 4})


def vit_b16_task(num_classes: int) -> TaskSpec:
    data = DataSpec(source="image_list", root="/nowhere", splits={"train": "a", "val": "b", "test": "c"},
                    num_classes=num_classes, images=ImageSpec(resize=(224, 224)))
    return TaskSpec(name="cub-like", data=data, backbone=BackboneSpec(model="vit_base_patch16_224.orig_in21k"))


def attach(name: str, seed: int = 0, **hparams: object) -> tuple[PeftModel, torch.nn.Module]:
    torch.manual_seed(seed)
    method_cls = registry.get_method(name)
    model = PeftModel(build_vit(TINY), method_cls(method_cls.parse_hparams(hparams)), num_classes=3)
    return model.eval(), model.method_module


def test_every_method_is_registered() -> None:
    assert sorted(registry.load_methods()) == ALL


@pytest.mark.parametrize(("method", "hparams", "trained", "stored"), [
    ("deep_share", {"num_tokens": 20}, 1_438_272, 184_320),  # CUB deep scripts: E = 10
    ("no_share", {"num_tokens": 20}, 184_320, 184_320),
    ("simple_share", {"num_tokens": 10}, 92_160, 92_160),
    ("deep_share", {"num_tokens": 100}, 1_806_912, 921_600),  # NABirds
    ("no_share", {"num_tokens": 400}, 3_686_400, 3_686_400),  # Cars
    ("deep_share_shallow", {"num_tokens": 200}, 188_976, 153_600),
    ("no_share_shallow", {"num_tokens": 200}, 153_600, 153_600),
    ("simple_share_shallow", {"num_tokens": 100}, 76_800, 76_800),
    ("deep_share_shallow", {"num_tokens": 100}, 150_576, 76_800),  # NABirds shallow: E = 50
    ("vpt_deep", {"num_tokens": 100}, 921_600, 921_600),  # VPT demo: dmlab 926,214 = this + 768·6 + 6
    ("linear", {}, 0, 0),
    ("full_ft", {}, 85_798_656, 85_798_656),
    ("lora", {"rank": 8}, 294_912, 294_912),
    ("adapter", {"bottleneck": 64}, 1_189_632, 1_189_632),
    ("bitfit", {}, 102_912, 102_912),  # 12 x (768+2304+768+768+3072+768) + patch-embed 768 + final norm 768
])
def test_parameter_counts_on_vit_b16(method: str, hparams: dict[str, object], trained: int, stored: int) -> None:
    from bench.params import count_parameters

    count = count_parameters(vit_b16_task(200), registry.get_method(method), hparams)
    assert (count.trained, count.stored) == (trained, stored)
    assert count.head == 153_800 and count.backbone == 85_798_656


def test_defaults_are_the_cub_scripts() -> None:
    from bench.params import count_parameters

    task = vit_b16_task(200)
    assert count_parameters(task, registry.get_method("deep_share")).trained == 1_438_272
    assert count_parameters(task, registry.get_method("no_share")).trained == 184_320
    assert count_parameters(task, registry.get_method("simple_share")).trained == 92_160
    hp = registry.get_method("deep_share").HParams()
    assert (hp.num_tokens, hp.mlp_hidden, hp.share_type, hp.dropout) == (20, 48, "non-linear", 0.1)
    assert registry.get_method("deep_share_shallow").HParams().dropout == 0.0
    assert registry.get_method("vpt_shallow").HParams().dropout == 0.0


def test_vit_b16_prompt_init_bound_is_vpts() -> None:
    from bench.prompting import prompt_init_bound

    with torch.device("meta"):
        backbone = build_vit(BackboneSpec(model="vit_base_patch16_224.orig_in21k", pretrained=False))
    assert prompt_init_bound(backbone) == pytest.approx(0.0625)


def test_prompt_init_is_uniform_within_the_bound() -> None:
    model, module = attach("no_share", num_tokens=400)
    from bench.prompting import prompt_init_bound

    bound = prompt_init_bound(model.backbone)
    assert module.keys.abs().max() <= bound and module.keys.abs().max() > 0.95 * bound
    assert module.keys.mean().abs() < 0.05 * bound


def test_deep_simple_share_equals_vpt_deep_with_the_same_prompts() -> None:
    images = torch.randn(4, 3, 16, 16)
    vpt, vpt_module = attach("vpt_deep", num_tokens=5)
    simple, simple_module = attach("simple_share", num_tokens=5)
    simple.backbone.load_state_dict(vpt.backbone.state_dict())
    simple_module.prompts.data.copy_(vpt_module.prompts.data)
    torch.testing.assert_close(simple.backbone(images), vpt.backbone(images), atol=1e-5, rtol=1e-5)


def test_deep_share_whose_mlp_reproduces_a_table_equals_no_share() -> None:
    images = torch.randn(2, 3, 16, 16)
    no_share, no_module = attach("no_share", num_tokens=8)  # E = 4
    deep, deep_module = attach("deep_share", num_tokens=8)
    deep.backbone.load_state_dict(no_share.backbone.state_dict())
    with torch.no_grad():
        for layer, mlp in enumerate(deep_module.mlps):
            hidden = torch.tanh(mlp[0](deep_module.table[layer]))  # (E, 48), full row rank
            target = torch.stack([no_module.keys[layer], no_module.values[layer]], dim=-1).flatten(-2)
            mlp[2].bias.zero_()
            mlp[2].weight.copy_((torch.linalg.pinv(hidden) @ target).T)
        keys, values = deep_module.key_value(1)
        torch.testing.assert_close(keys, no_module.keys[1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(values, no_module.values[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(deep.backbone(images), no_share.backbone(images), atol=1e-5, rtol=1e-5)


def test_key_is_even_and_value_odd_coordinates() -> None:
    _, module = attach("deep_share", num_tokens=4)
    out = module.mlps[0](module.table[0])
    keys, values = module.key_value(0)
    torch.testing.assert_close(keys, out[:, 0::2])
    torch.testing.assert_close(values, out[:, 1::2])


@pytest.mark.parametrize("name", ["no_share", "lora", "adapter"])
def test_empty_or_zero_initialised_methods_equal_the_frozen_backbone(name: str) -> None:
    images = torch.randn(3, 3, 16, 16)
    frozen = build_vit(TINY).eval()
    if name == "no_share":  # E = 1 // 2 = 0 positions: an empty prefix (refused as a setting, built by hand here)
        method_cls = registry.get_method(name)
        with pytest.raises(BenchError, match="greater than or equal to 2"):
            method_cls.parse_hparams({"num_tokens": 1})
        hparams = method_cls.HParams.model_construct(**{**method_cls.HParams().model_dump(), "num_tokens": 1})
        model = PeftModel(build_vit(TINY), method_cls(hparams), num_classes=3).eval()
    else:
        model, _ = attach(name)
    model.backbone.load_state_dict(frozen.state_dict())
    torch.testing.assert_close(model.backbone(images), frozen(images), atol=1e-6, rtol=1e-6)


def test_shallow_variants_only_touch_the_first_layer() -> None:
    for name in ("no_share_shallow", "simple_share_shallow", "deep_share_shallow"):
        _, module = attach(name, num_tokens=4)
        assert module(0, 2) is not None and module(1, 2) is None and module(2, 2) is None
    _, module = attach("vpt_shallow", num_tokens=2)
    hidden = torch.randn(1, 17, 32)
    assert module(0, hidden).shape[1] == 19 and module(1, hidden) is hidden


def test_prompt_dropout_masks_each_example_and_only_in_training() -> None:
    model, module = attach("no_share", num_tokens=8, dropout=0.5)
    model.train()
    keys, _ = module(0, 4)
    assert keys.shape == (4, 4, 4, 8)  # (batch, E, heads, head_dim): one mask per example
    assert not torch.equal(keys[0], keys[1])
    model.eval()
    keys, _ = module(0, 4)
    assert keys.shape == (4, 4, 8)


def test_deep_share_runs_its_mlp_once_at_inference() -> None:
    model, module = attach("deep_share", num_tokens=4)
    calls = []
    module.mlps[0].register_forward_hook(lambda *args: calls.append(1))
    images = torch.randn(2, 3, 16, 16)
    model.eval()
    first = model(images)
    torch.testing.assert_close(model(images), first)
    assert len(calls) == 1
    model.train()
    model(images)
    assert len(calls) == 2  # training always regenerates (the parameters change)
    model.eval()
    model(images)
    assert len(calls) == 3  # the cache was dropped when training resumed


def test_bitfit_trains_only_biases() -> None:
    model, _ = attach("bitfit")
    names = [n for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    assert names and all(n.endswith(".bias") for n in names)


@pytest.mark.parametrize("name", ALL)
def test_every_method_runs_the_protocol(name: str, tiny_tasks_dir: Path, tmp_path: Path) -> None:
    from bench.store import RunStore
    from bench.train.config import RunOptions
    from bench.train.protocol import run_protocol

    task = registry.load_task_by_name("tiny/colors", (tiny_tasks_dir,))
    method_cls = registry.get_method(name)
    overrides: dict[str, object] = {"base_lr": 0.01 if method_cls.optimizer == "adamw" else 0.5,
                                    "weight_decay": 0.0}
    if "num_tokens" in method_cls.HParams.model_fields:
        overrides["num_tokens"] = 4
    result = run_protocol(task, method_cls, RunStore(tmp_path), RunOptions(), seeds=[42], overrides=overrides)
    (record,) = result.final
    assert record["status"] == "completed" and 0 <= record["metrics"]["top1"] <= 100
    assert record["params"]["trainable"] == (0 if name == "linear" else record["params"]["trainable"])
    if name != "linear":
        assert record["params"]["trainable"] > 0


def test_attached_modules_stay_outside_the_backbone() -> None:
    for name in ("vpt_deep", "no_share", "lora", "adapter"):
        model, module = attach(name)
        assert not any(m is module for m in model.backbone.modules())
        assert all(k.startswith("vit.") for k in model.backbone.state_dict())
        model.train()
        assert module.training and not model.backbone.training


# The README's parameter table (ViT-B/16 on CUB-200, `bench list methods --params --task cub`): trained, stored.
README_CUB_TABLE = {
    "linear": (0, 0), "full_ft": (85_798_656, 85_798_656), "vpt_deep": (92_160, 92_160), "vpt_shallow": (7_680, 7_680),
    "no_share": (184_320, 184_320), "simple_share": (92_160, 92_160), "deep_share": (1_438_272, 184_320),
    "no_share_shallow": (153_600, 153_600), "deep_share_shallow": (188_976, 153_600),
    "simple_share_shallow": (76_800, 76_800), "lora": (294_912, 294_912), "adapter": (1_189_632, 1_189_632),
    "bitfit": (102_912, 102_912),
}


def test_readme_parameter_table_for_cub_still_holds() -> None:
    from bench.params import method_parameter_counts

    task = registry.load_task_by_name("cub")
    result = method_parameter_counts(task, registry.load_methods())
    counts = {c.method: (c.trained, c.stored) for c in result.counts}
    assert {name: counts[name] for name in README_CUB_TABLE} == README_CUB_TABLE
    assert counts["ia3"] == (55_296, 55_296) and counts["prompt_tuning"] == (15_360, 15_360)
    assert {c.head for c in result.counts} == {153_800} and {c.backbone for c in result.counts} == {85_798_656}
    assert result.modality == "vision" and result.not_applicable == []


def test_parameter_counts_of_a_language_task_list_what_does_not_apply() -> None:
    from bench.params import method_parameter_counts

    task = registry.load_task_by_name("mini/e2e")
    result = method_parameter_counts(task, registry.load_methods())
    skipped = {n.method: n.reason for n in result.not_applicable}
    assert set(skipped) == {"vpt_deep", "vpt_shallow"}
    assert skipped["vpt_deep"] == "a vision method; mini/e2e is a language task"
    counts = {c.method: c for c in result.counts}
    assert counts["no_share"].trained == 4 * 5 * 2 * 64  # the task's num_tokens 10: E = 5, mini GPT-2 (4 x 64)
    assert counts["ia3"].trained == 4 * (3 * 64 + 4 * 64) and counts["prompt_tuning"].trained == 20 * 64
    assert {c.head for c in result.counts} == {0}
