"""Prompt tuning written only against the input-token hook: HF peft's parameter count, first training step,
logits and beam-search generation on GPT-2 and BART; VPT-shallow's computation on ViT; padding-independent
generation on GPT-2 (the runner left-pads)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from bench import registry
from bench.train.model import PeftModel as LanguagePeftModel
from tests.test_backbone_interface import run, tiny
from tests.test_ia3 import bart_base, gpt2_base

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
N = 5


def ours(base: Any, num_tokens: int = N) -> LanguagePeftModel:
    from bench.backbones.bart import BartBackbone
    from bench.backbones.gpt2 import GPT2Backbone
    from bench.spec import LanguageBackboneSpec

    cls = registry.get_method("prompt_tuning")
    backbone_cls = GPT2Backbone if base.config.model_type == "gpt2" else BartBackbone
    backbone = backbone_cls(copy.deepcopy(base), None, LanguageBackboneSpec(kind=base.config.model_type, model="t"))
    return LanguagePeftModel(backbone, cls(cls.parse_hparams({"num_tokens": num_tokens})))


def theirs(base: Any, num_tokens: int = N, **config: Any) -> Any:
    task = peft.TaskType.CAUSAL_LM if base.config.model_type == "gpt2" else peft.TaskType.SEQ_2_SEQ_LM
    return peft.get_peft_model(copy.deepcopy(base), peft.PromptTuningConfig(
        task_type=task, num_virtual_tokens=num_tokens, **config))


def pair(base: Any, **config: Any) -> tuple[LanguagePeftModel, Any]:
    """Our model and peft's, with peft's random prompts copied into ours."""
    model, reference = ours(base), theirs(base, **config)
    with torch.no_grad():
        model.method_module.prompts.copy_(reference.prompt_encoder["default"].embedding.weight[:N])
    return model, reference


def beams(model: Any, ids: torch.Tensor, mask: torch.Tensor, **extra: Any) -> Any:
    return model.generate(input_ids=ids, attention_mask=mask, num_beams=3, max_new_tokens=6, do_sample=False,
                          return_dict_in_generate=True, output_scores=True, pad_token_id=0, **extra)


def test_trainable_counts_equal_peft() -> None:
    gpt2, bart = gpt2_base(), bart_base()
    assert ours(gpt2, 20).method_trainable == theirs(gpt2, 20).get_nb_trainable_parameters()[0] == 20 * 64
    # Seq2seq: peft allocates prompts for encoder and decoder by default (num_transformer_submodules=2), but its
    # prompt-tuning forward and generate use the encoder's only; with one submodule the counts are equal.
    single = theirs(bart, 20, num_transformer_submodules=1).get_nb_trainable_parameters()[0]
    assert ours(bart, 20).method_trainable == single == 20 * 32
    assert theirs(bart, 20).get_nb_trainable_parameters()[0] == 2 * single


def test_first_training_step_logits_and_generation_equal_peft_on_gpt2() -> None:
    model, reference = pair(gpt2_base())
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 100, (3, 10), generator=generator)
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0
    labels = ids.masked_fill(mask == 0, -100)

    def step(logits: torch.Tensor, prompts: torch.nn.Parameter) -> torch.Tensor:
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        loss.backward()
        torch.optim.AdamW([prompts], lr=1e-2, weight_decay=0.0).step()
        return loss.detach()

    their_prompts = reference.prompt_encoder["default"].embedding.weight
    their_logits = reference(input_ids=ids, attention_mask=mask).logits[:, N:]  # peft returns the prompts' too
    their_loss = step(their_logits, their_prompts)
    our_logits = model.backbone(input_ids=ids, attention_mask=mask).logits
    our_loss = step(our_logits, model.method_module.prompts)
    torch.testing.assert_close(our_logits, their_logits, atol=1e-5, rtol=1e-5)
    assert our_loss.item() == pytest.approx(their_loss.item(), abs=1e-6)
    torch.testing.assert_close(model.method_module.prompts.grad, their_prompts.grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(model.method_module.prompts, their_prompts, atol=1e-6, rtol=1e-5)

    model.eval()  # beam search with the KV cache, after the step (unpadded: peft ignores padding in positions)
    prompt_ids, prompt_mask = ids[:2, :6], torch.ones(2, 6, dtype=torch.long)
    with torch.no_grad():
        mine = beams(model.backbone.model, prompt_ids, prompt_mask)
        their = beams(reference, prompt_ids, prompt_mask)
    assert torch.equal(mine.sequences, their.sequences)
    torch.testing.assert_close(mine.sequences_scores, their.sequences_scores, atol=1e-5, rtol=1e-5)


def test_gpt2_left_padded_generation_equals_each_prompt_alone() -> None:
    """The runner left-pads decoder-only prompts: padding must not change what is generated."""
    model = ours(gpt2_base()).eval()
    with torch.no_grad():
        model.method_module.prompts.mul_(3.0)  # prompts that matter
    short, long = torch.tensor([[7, 8, 9]]), torch.tensor([[11, 12, 13, 14, 15]])
    batch = torch.tensor([[0, 0, 7, 8, 9], [11, 12, 13, 14, 15]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    generate = model.backbone.model
    with torch.no_grad():
        together = beams(generate, batch, mask)
        alone = [beams(generate, ids, torch.ones_like(ids)) for ids in (short, long)]
    assert together.sequences[0, 2:].tolist() == alone[0].sequences[0].tolist()
    assert together.sequences[1].tolist() == alone[1].sequences[0].tolist()
    torch.testing.assert_close(together.sequences_scores, torch.cat([a.sequences_scores for a in alone]),
                               atol=1e-5, rtol=1e-5)


def test_bart_logits_gradients_and_generation_equal_peft() -> None:
    model, reference = pair(bart_base(), num_transformer_submodules=1)
    generator = torch.Generator().manual_seed(4)
    ids = torch.randint(3, 60, (2, 7), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    decoder = torch.randint(3, 60, (2, 4), generator=generator)
    their_logits = reference(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder).logits
    our_logits = model.backbone(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder).logits
    torch.testing.assert_close(our_logits, their_logits, atol=1e-5, rtol=1e-5)
    their_logits.logsumexp(-1).sum().backward()
    our_logits.logsumexp(-1).sum().backward()
    their_grad = reference.prompt_encoder["default"].embedding.weight.grad
    torch.testing.assert_close(model.method_module.prompts.grad, their_grad, atol=1e-5, rtol=1e-5)
    model.eval()
    with torch.no_grad():
        mine = beams(model.backbone.model, ids, mask)
        their = beams(reference, ids, mask)
    assert torch.equal(mine.sequences, their.sequences)
    torch.testing.assert_close(mine.sequences_scores, their.sequences_scores, atol=1e-5, rtol=1e-5)


def test_on_vit_it_is_vpt_shallow_through_the_input_token_hook() -> None:
    from tests.test_methods import attach

    prompt, prompt_module = attach("prompt_tuning", num_tokens=6)
    vpt, vpt_module = attach("vpt_shallow", num_tokens=6)  # same seed: the same uniform draws
    torch.testing.assert_close(prompt_module.prompts, vpt_module.prompts[0], atol=0, rtol=0)
    images = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(prompt.backbone(images), vpt.backbone(images), atol=0, rtol=0)
    assert prompt.method_trainable == 6 * 32


@pytest.mark.parametrize("family", ["vit", "gpt2", "bart"])
def test_changes_the_output_only_through_its_prompts(family: str) -> None:
    backbone = tiny(family)
    cls = registry.get_method("prompt_tuning")
    module: Any = cls(cls.parse_hparams({"num_tokens": 3})).attach(backbone)
    first = run(backbone)
    (first * torch.randn_like(first)).sum().backward()
    assert module.prompts.grad is not None and module.prompts.grad.abs().sum() > 0
    torch.testing.assert_close(run(backbone), first, atol=0, rtol=0)
    with torch.no_grad():
        module.prompts.add_(torch.randn_like(module.prompts))
    assert (run(backbone) - first).abs().max() > 1e-4


def test_prompt_dropout_masks_each_example_in_training_only() -> None:
    cls = registry.get_method("prompt_tuning")
    module: Any = cls(cls.parse_hparams({"num_tokens": 4, "dropout": 0.5})).attach(tiny("gpt2"))
    module.train()
    prompts = module(3)
    assert prompts.shape == (3, 4, 32) and not torch.equal(prompts[0], prompts[1])
    module.eval()
    assert module(3).shape == (4, 32)
