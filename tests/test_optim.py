"""The protocol's optimisation rules: lr at every epoch, lr scaling, weight-decay groups, head init, modes."""

from __future__ import annotations

import math

import pytest
import torch

from bench.backbones.vit import build_vit
from bench.registry import get_method
from bench.spec import BackboneSpec
from bench.train.model import HEAD_BIAS, PeftModel, make_head
from bench.train.optim import build_optimizer, effective_lr, lr_multiplier, weight_decay_groups

TINY_VIT = BackboneSpec(model="vit_base_patch16_224", pretrained=False,
                        model_kwargs={"img_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2})


def test_lr_every_epoch_of_the_paper_schedule() -> None:
    # 10 warm-up epochs then cosine over 100: epoch 0 at lr 0, epoch 10 at the peak.
    expected = [e / 10 for e in range(10)] + [0.5 * (1 + math.cos(math.pi * (e - 10) / 90)) for e in range(10, 100)]
    got = [lr_multiplier(e, 10, 100) for e in range(100)]
    assert got == pytest.approx(expected, abs=1e-12)
    assert got[0] == 0.0 and got[1] == pytest.approx(0.1) and got[10] == 1.0
    assert got[55] == pytest.approx(0.5) and got[99] == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))


def test_no_warmup_starts_at_peak() -> None:
    assert lr_multiplier(0, 0, 10) == 1.0


def test_lr_scales_with_batch_over_256() -> None:
    assert effective_lr(25.0, 64) == 6.25  # CUB deep-share script: BASE_LR 25 at batch 64
    assert effective_lr(0.1, 128) == 0.05


def _model(method: str) -> PeftModel:
    torch.manual_seed(0)
    return PeftModel(build_vit(TINY_VIT), get_method(method)(), num_classes=5)


def test_weight_decay_on_everything_but_head_bias_for_sgd() -> None:
    model = _model("full_ft")
    decay, no_decay = weight_decay_groups(model, "sgd")
    assert no_decay == ["head.bias"]
    assert "head.weight" in decay and "backbone.vit.blocks.0.norm1.bias" in decay
    optimizer = build_optimizer(model, "sgd", lr=0.1, weight_decay=0.001)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.001, 0.0]
    assert optimizer.param_groups[0]["momentum"] == 0.9


def test_adamw_skips_every_bias_like_vpt() -> None:
    model = _model("full_ft")
    decay, no_decay = weight_decay_groups(model, "adamw")
    assert no_decay and all(n.endswith(".bias") for n in no_decay)
    assert not any(n.endswith(".bias") for n in decay)
    assert {"backbone.vit.cls_token", "backbone.vit.pos_embed", "backbone.vit.norm.weight", "head.weight"} <= set(decay)
    assert isinstance(build_optimizer(model, "adamw", 1e-3, 0.01), torch.optim.AdamW)


def test_linear_probe_trains_only_the_head() -> None:
    model = _model("linear")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]
    assert model.method_trainable == 0


def test_head_init_bias_and_fan_out_kaiming() -> None:
    torch.manual_seed(0)
    head = make_head(768, 200)
    assert pytest.approx(-4.59512, abs=1e-5) == HEAD_BIAS
    assert torch.all(head.bias == torch.tensor(HEAD_BIAS))
    # kaiming normal, fan_out: std = sqrt(2 / out_features)
    assert head.weight.std().item() == pytest.approx(math.sqrt(2 / 200), rel=0.02)


def test_backbone_eval_for_peft_and_train_for_full_ft() -> None:
    peft = _model("linear").train()
    assert not peft.backbone.training and peft.head.training
    full = _model("full_ft").train()
    assert full.backbone.training
    assert full.backbone.vit.blocks[0].mlp.drop1.p == 0.1  # VPT's ViT dropout is active in full FT
    assert full.backbone.vit.blocks[0].attn.proj_drop.p == 0.0
