"""IA3 written only against the backbone hooks: HF peft's parameter counts on GPT-2 and BART, the same first
training step as peft on GPT-2, identity at init and a working forward / backward / generate on ViT, GPT-2, BART."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from bench import registry
from bench.backbones.bart import BartBackbone
from bench.backbones.gpt2 import GPT2Backbone
from bench.spec import LanguageBackboneSpec
from bench.train.model import PeftModel as LanguagePeftModel
from tests.test_backbone_interface import run, tiny

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")


def gpt2_base() -> Any:
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=100, n_positions=64, bos_token_id=0,
                                     eos_token_id=99)
    return transformers.GPT2LMHeadModel(config).eval()


def bart_base() -> Any:
    torch.manual_seed(0)
    config = transformers.BartConfig(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                                     decoder_attention_heads=4, vocab_size=60, max_position_embeddings=64,
                                     encoder_ffn_dim=64, decoder_ffn_dim=48)
    return transformers.BartForConditionalGeneration(config).eval()


def ours(base: Any, **hparams: object) -> LanguagePeftModel:
    cls = registry.get_method("ia3")
    backbone_cls = GPT2Backbone if base.config.model_type == "gpt2" else BartBackbone
    backbone = backbone_cls(copy.deepcopy(base), None, LanguageBackboneSpec(kind=base.config.model_type, model="t"))
    return LanguagePeftModel(backbone, cls(cls.parse_hparams(hparams)))


def theirs(base: Any) -> Any:
    task = peft.TaskType.CAUSAL_LM if base.config.model_type == "gpt2" else peft.TaskType.SEQ_2_SEQ_LM
    return peft.get_peft_model(copy.deepcopy(base), peft.IA3Config(task_type=task))


def test_trainable_counts_equal_peft_defaults_on_gpt2_and_bart() -> None:
    for base, expected in ((gpt2_base(), 2 * (3 * 64 + 4 * 64)),  # c_attn (q|k|v) + mlp.c_proj input, per block
                           (bart_base(), 6 * 2 * 32 + 2 * 64 + 2 * 48)):  # q, v in 3 stacks x 2 + fc2 inputs
        trainable, _ = theirs(base).get_nb_trainable_parameters()
        assert ours(base).method_trainable == trainable == expected


def gpt2_peft_vectors(model: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """peft's (c_attn q|k|v vector, mlp.c_proj input vector) per block."""
    blocks = model.base_model.model.transformer.h
    return [(b.attn.c_attn.ia3_l["default"], b.mlp.c_proj.ia3_l["default"]) for b in blocks]


def test_first_training_step_equals_peft_on_gpt2() -> None:
    base = gpt2_base()
    model, reference = ours(base), theirs(base)
    module: Any = model.method_module
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():  # move off the all-ones init, the same values on both sides
        for layer, (attention, mlp) in enumerate(gpt2_peft_vectors(reference)):
            attention.copy_(1 + 0.3 * torch.randn(attention.shape, generator=generator))
            mlp.copy_(1 + 0.3 * torch.randn(mlp.shape, generator=generator))
            for part, chunk in zip("qkv", attention.flatten().split(64), strict=True):
                module.attention[part][layer].copy_(chunk)
            module.feedforward[layer].copy_(mlp.flatten())
    ids = torch.randint(0, 100, (3, 10), generator=generator)
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0
    labels = ids.masked_fill(mask == 0, -100)

    def step(net: Any, parameters: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = net(input_ids=ids, attention_mask=mask).logits
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        loss.backward()
        optimizer = torch.optim.AdamW(parameters, lr=1e-2, weight_decay=0.0)
        optimizer.step()
        return logits.detach(), loss.detach()

    mine = list(module.parameters())
    their = [p for pair in gpt2_peft_vectors(reference) for p in pair]
    their_logits, their_loss = step(reference, their)
    our_logits, our_loss = step(model.backbone, mine)
    torch.testing.assert_close(our_logits, their_logits, atol=1e-5, rtol=1e-5)
    assert our_loss.item() == pytest.approx(their_loss.item(), abs=1e-6)
    for layer, (attention, mlp) in enumerate(gpt2_peft_vectors(reference)):
        ours_qkv = torch.cat([module.attention[part][layer] for part in "qkv"])
        torch.testing.assert_close(ours_qkv, attention.flatten(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(module.feedforward[layer], mlp.flatten(), atol=1e-5, rtol=1e-5)
        grads = torch.cat([module.attention[part].grad[layer] for part in "qkv"])
        torch.testing.assert_close(grads, attention.grad.flatten(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["vit", "gpt2", "bart"])
def test_identity_at_init_then_trains_on_every_family(family: str) -> None:
    backbone = tiny(family)
    frozen = run(backbone)
    cls = registry.get_method("ia3")
    module: Any = cls().attach(backbone)
    torch.testing.assert_close(run(backbone), frozen, atol=0, rtol=0)  # all scales 1: the frozen network
    parts = {"vit": "kv", "gpt2": "qkv", "bart": "qv"}[family]
    assert set(module.attention) == set(parts) and len(module.feedforward) == backbone.num_blocks
    out = run(backbone)
    (out * torch.randn_like(out)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
    with torch.no_grad():
        module.attention[parts[-1]].mul_(1.5)
    changed = run(backbone)
    assert changed.shape == frozen.shape and (changed - frozen).abs().max() > 1e-4
    if family == "bart":
        ids = torch.randint(3, 50, (2, 5))
        generated = backbone.model.generate(input_ids=ids, num_beams=2, max_new_tokens=4, do_sample=False)
        assert generated.shape[0] == 2 and generated.shape[1] > 1


def test_attention_override_and_vit_count() -> None:
    from bench.params import count_parameters
    from tests.test_methods import vit_b16_task

    task = vit_b16_task(200)
    cls = registry.get_method("ia3")
    # ViT-B/16: l_k, l_v (12 x 2 x 768) + l_ff (12 x 3072)
    assert count_parameters(task, cls).trained == 12 * 2 * 768 + 12 * 3072 == 55_296
    assert count_parameters(task, cls, {"attention": "qkv", "feedforward": False}).trained == 12 * 3 * 768
