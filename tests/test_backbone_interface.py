"""The backbone interface on all three families: the registry, the prefix-provider protocol, and what each hook
means, checked against the same change written into the frozen weights (so a hook in the wrong place fails)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from bench import registry
from bench.backbones import Backbone, backbone_class, backbone_skeleton, build_backbone
from bench.backbones.vit import build_vit
from bench.errors import BenchError
from bench.spec import BackboneSpec, LanguageBackboneSpec
from tests.test_language_backbones import TableProvider, tiny_bart, tiny_gpt2

pytest.importorskip("transformers")

VIT = BackboneSpec(model="vit_base_patch16_224", pretrained=False,
                   model_kwargs={"img_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 4})
FAMILIES = ["vit", "gpt2", "bart"]


def tiny(family: str) -> Backbone:
    torch.manual_seed(0)
    if family == "vit":
        return build_vit(VIT).eval()
    return tiny_gpt2() if family == "gpt2" else tiny_bart()


def run(backbone: Backbone) -> torch.Tensor:
    """Features (ViT) or logits (language) on fixed inputs, the BART batch with padding."""
    generator = torch.Generator().manual_seed(1)
    if backbone.kind == "vit":
        return backbone(torch.randn(2, 3, 16, 16, generator=generator))
    ids = torch.randint(3, 50, (2, 6), generator=generator)
    if backbone.kind == "gpt2":
        return backbone(input_ids=ids).logits
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    return backbone(input_ids=ids, attention_mask=mask, decoder_input_ids=ids[:, :3]).logits


def value_projections(backbone: Any) -> list[tuple[torch.Tensor, torch.Tensor | None, slice, bool]]:
    """Per attention layer: (weight, bias, the value rows/columns, weight is (in, out)) — test-side knowledge."""
    if backbone.kind == "vit":
        dim = backbone.attention_dim
        return [(b.attn.qkv.weight, b.attn.qkv.bias, slice(2 * dim, 3 * dim), False) for b in backbone.vit.blocks]
    if backbone.kind == "gpt2":
        dim = backbone.hidden_size
        return [(b.attn.c_attn.weight, b.attn.c_attn.bias, slice(2 * dim, 3 * dim), True)
                for b in backbone.model.transformer.h]
    return [(a.v_proj.weight, a.v_proj.bias, slice(None), False) for a in backbone.attention_modules()]


def scale_values_in_weights(backbone: Any, scales: torch.Tensor) -> None:
    with torch.no_grad():
        for layer, (weight, bias, rows, transposed) in enumerate(value_projections(backbone)):
            if transposed:
                weight[:, rows] *= scales[layer]
            else:
                weight[rows] *= scales[layer][:, None]
            if bias is not None:
                bias[rows] *= scales[layer]


def scale_mlp_inputs_in_weights(backbone: Any, scales: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for block, projection in enumerate(backbone.mlp_projections()):
            if backbone.kind == "gpt2":  # Conv1D weight (in, out)
                projection.weight *= scales[block][:, None]
            else:
                projection.weight *= scales[block][None, :]


# ---------------------------------------------------------------- registry


@pytest.mark.parametrize("family", FAMILIES)
def test_registry_builds_every_kind_and_its_meta_skeleton(family: str) -> None:
    specs = {"vit": VIT, "gpt2": LanguageBackboneSpec(kind="gpt2", model="bench:mini_gpt2"),
             "bart": LanguageBackboneSpec(kind="bart", model="bench:mini_bart")}
    backbone = build_backbone(specs[family])
    skeleton = backbone_skeleton(specs[family])
    assert type(backbone) is backbone_class(family) and backbone.kind == family
    assert next(skeleton.parameters()).device.type == "meta"
    assert backbone.modality == ("vision" if family == "vit" else "language")
    for fact in ("num_layers", "num_blocks", "hidden_size", "num_heads", "head_dim", "attention_dim"):
        assert getattr(skeleton, fact) == getattr(backbone, fact), fact
    mlp_dims = {"vit": [128] * 2, "gpt2": [256] * 4, "bart": [256] * 4}  # 4 x hidden in all three configs
    assert [skeleton.mlp_dim(b) for b in range(skeleton.num_blocks)] == mlp_dims[family]
    assert len(backbone.stack_names()) == len(backbone.stacks())


def test_unknown_backbone_kind_is_a_clear_error() -> None:
    with pytest.raises(BenchError, match="unknown backbone kind 'gtp2'.*Did you mean 'gpt2'"):
        backbone_class("gtp2")


# ---------------------------------------------------------------- prefix provider protocol


def test_a_prefix_provider_must_state_its_positions() -> None:
    backbone = tiny("gpt2")
    keys = torch.randn(2, 3, 4, 8)
    with pytest.raises(BenchError, match=r"positions\(layer\)"):
        backbone.set_prefix_provider(lambda layer, batch: (keys[layer], keys[layer]))
    backbone.set_prefix_provider(lambda layer, batch: (keys[layer], keys[layer]), positions=3)
    counted = run(backbone)
    backbone.set_prefix_provider(None)
    backbone.set_prefix_provider(TableProvider(keys, keys))  # the same prefix with a positions() method
    torch.testing.assert_close(run(backbone), counted, atol=0, rtol=0)
    backbone.set_prefix_provider(None)
    backbone.set_prefix_provider(lambda layer, batch: (keys[layer], keys[layer]), positions=2)
    with pytest.raises(RuntimeError, match=r"returned 3 positions for layer 0 but states positions\(0\) = 2"):
        run(backbone)


def test_gpt2_text_positions_start_after_the_stated_prefix() -> None:
    """With shift_positions, the text's position ids start after the P positions the provider states."""
    backbone = tiny("gpt2")
    table = backbone.model.transformer.wpe.table
    seen: list[torch.Tensor] = []
    table.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    backbone.set_prefix_provider(lambda layer, batch: (torch.zeros(4, 4, 8), torch.zeros(4, 4, 8)), positions=4)
    run(backbone)
    assert seen[-1].tolist() == [[4, 5, 6, 7, 8, 9]]


# ---------------------------------------------------------------- q/k/v and MLP hooks


@pytest.mark.parametrize("family", FAMILIES)
def test_qkv_hook_on_values_equals_scaling_the_value_projection(family: str) -> None:
    hooked, reference = tiny(family), tiny(family)
    scales = 0.5 + torch.rand(hooked.num_layers, hooked.attention_dim)
    calls: list[tuple[int, str, tuple[int, ...]]] = []

    def hook(layer: int, part: str, projected: torch.Tensor) -> torch.Tensor:
        calls.append((layer, part, tuple(projected.shape)))
        return projected * scales[layer] if part == "v" else projected

    hooked.set_qkv_hook(hook)
    scale_values_in_weights(reference, scales)
    torch.testing.assert_close(run(hooked), run(reference), atol=1e-5, rtol=1e-5)
    assert {part for _, part, _ in calls} == {"q", "k", "v"}
    assert {layer for layer, _, _ in calls} == set(range(hooked.num_layers))
    assert all(shape[-1] == hooked.attention_dim and len(shape) == 3 for _, _, shape in calls)


@pytest.mark.parametrize("family", FAMILIES)
def test_mlp_hook_equals_scaling_the_second_projections_input(family: str) -> None:
    hooked, reference = tiny(family), tiny(family)
    scales = [0.5 + torch.rand(hooked.mlp_dim(b)) for b in range(hooked.num_blocks)]
    hooked.set_mlp_hook(lambda block, hidden: hidden * scales[block])
    scale_mlp_inputs_in_weights(reference, scales)
    torch.testing.assert_close(run(hooked), run(reference), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_identity_hooks_leave_the_frozen_backbone_unchanged(family: str) -> None:
    backbone = tiny(family)
    frozen = run(backbone)
    backbone.set_qkv_hook(lambda layer, part, projected: projected)
    backbone.set_mlp_hook(lambda block, hidden: hidden)
    torch.testing.assert_close(run(backbone), frozen, atol=0, rtol=0)
    with pytest.raises(RuntimeError, match="already attached"):
        backbone.set_mlp_hook(lambda block, hidden: hidden)


def test_qkv_hook_and_delta_compose_on_a_fused_projection() -> None:
    """LoRA's delta is added first, then the hook sees the projection with the delta (GPT-2's fused c_attn)."""
    backbone = tiny("gpt2")
    seen: list[torch.Tensor] = []
    backbone.set_qkv_delta(lambda layer, x: (None, None, torch.ones(*x.shape[:-1], 32)))
    backbone.set_qkv_hook(lambda layer, part, projected: seen.append(projected) or projected)
    run(backbone)
    plain = tiny("gpt2")
    block = plain.model.transformer.h[0]
    x = block.ln_1(plain.model.transformer.wte(torch.randint(3, 50, (2, 6), generator=torch.Generator().manual_seed(1)))
                   + plain.model.transformer.wpe.table(torch.arange(6)))
    torch.testing.assert_close(seen[2], block.attn.c_attn(x)[..., 64:] + 1)


# ---------------------------------------------------------------- input tokens


@pytest.mark.parametrize("family", FAMILIES)
def test_input_tokens_change_the_output_only_by_their_values(family: str) -> None:
    backbone = tiny(family)
    frozen = run(backbone)
    tokens = torch.zeros(3, backbone.hidden_size, requires_grad=True)
    backbone.set_input_tokens(lambda batch: tokens)
    first = run(backbone)
    assert first.shape == frozen.shape  # outputs of the real tokens only
    assert (first - frozen).abs().max() > 1e-4  # three more tokens to attend to
    (first * torch.randn_like(first)).sum().backward()  # (a LayerNorm output's squares sum to a constant)
    assert tokens.grad is not None and tokens.grad.abs().sum() > 0
    with torch.no_grad():
        tokens.add_(torch.randn_like(tokens))
    assert (run(backbone) - first).abs().max() > 1e-4


def test_gpt2_input_tokens_equal_the_same_embeddings_typed_in_front() -> None:
    """Exact: N input tokens then text == the model on [tokens; text] embeddings, logits of the text part."""
    backbone = tiny("gpt2")
    tokens = torch.randn(3, 32)
    ids = torch.randint(3, 50, (2, 6))
    reference = copy.deepcopy(backbone.model)
    reference.transformer.wpe = reference.transformer.wpe.table  # plain positions 0.. over [tokens; text]
    embeds = torch.cat([tokens.expand(2, -1, -1), reference.transformer.wte(ids)], dim=1)
    expected = reference(inputs_embeds=embeds).logits[:, 3:]
    backbone.set_input_tokens(lambda batch: tokens)
    torch.testing.assert_close(backbone(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-5)


def test_bart_input_tokens_widen_encoder_and_cross_attention_masks() -> None:
    """BART: tokens before the encoder input; a padded source gives the same result as the unpadded one."""
    backbone = tiny("bart")
    tokens = torch.randn(2, 32)
    backbone.set_input_tokens(lambda batch: tokens)
    ids = torch.randint(3, 50, (1, 5))
    decoder = torch.randint(3, 50, (1, 3))
    alone = backbone(input_ids=ids, decoder_input_ids=decoder).logits
    padded = torch.cat([ids, torch.ones(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 5 + [0] * 3])
    torch.testing.assert_close(backbone(input_ids=padded, attention_mask=mask, decoder_input_ids=decoder).logits, alone,
                               atol=1e-5, rtol=1e-5)
    out = backbone.model.generate(input_ids=padded, attention_mask=mask, num_beams=2, max_new_tokens=4,
                                  do_sample=False, return_dict_in_generate=True, output_scores=True)
    again = backbone.model.generate(input_ids=ids, num_beams=2, max_new_tokens=4, do_sample=False,
                                    return_dict_in_generate=True, output_scores=True)
    assert torch.equal(out.sequences, again.sequences)
    torch.testing.assert_close(out.sequences_scores, again.sequences_scores, atol=1e-5, rtol=1e-5)


def test_token_hook_is_refused_on_language_backbones_with_a_pointer_to_input_tokens() -> None:
    with pytest.raises(BenchError, match="set_input_tokens"):
        tiny("gpt2").set_token_hook(lambda layer, hidden: hidden)


# ---------------------------------------------------------------- shallow prefixes on language backbones


@pytest.mark.parametrize("name", ["no_share_shallow", "simple_share_shallow", "deep_share_shallow"])
@pytest.mark.parametrize("family", ["gpt2", "bart"])
def test_shallow_prefixes_go_into_the_first_layer_of_every_stack(name: str, family: str) -> None:
    backbone = tiny(family)
    frozen = run(backbone)
    cls = registry.get_method(name)
    module = cls(cls.parse_hparams({"num_tokens": 4})).attach(backbone)
    module.eval()
    firsts = [stack.start for stack in backbone.stacks()]
    prefixed = [layer for layer in range(backbone.num_layers) if module(layer, 2) is not None]
    assert prefixed == firsts  # GPT-2: [0]; BART: encoder self 0, decoder self 0, decoder cross 0
    assert [module.positions(layer) > 0 for layer in range(backbone.num_layers)] == \
        [layer in firsts for layer in range(backbone.num_layers)]
    assert (run(backbone) - frozen).abs().max() > 1e-4


def _shallow_bart_share_counts() -> dict[str, int]:
    counts = {}
    for name in ("no_share_shallow", "simple_share_shallow", "deep_share_shallow"):
        cls = registry.get_method(name)
        module = cls(cls.parse_hparams({"num_tokens": 4})).attach(tiny("bart"))
        counts[name] = sum(p.numel() for p in module.parameters())
    return counts


def test_shallow_bart_prefixes_have_one_table_per_stack() -> None:
    # E = 2 positions, hidden 32; deep_share_shallow: per stack a table (2x32) and an MLP 32 -> 48 -> 2·32
    mlp = 32 * 48 + 48 + 48 * 64 + 64
    assert _shallow_bart_share_counts() == {"no_share_shallow": 3 * 2 * 2 * 32, "simple_share_shallow": 3 * 4 * 32,
                                            "deep_share_shallow": 3 * (2 * 32 + mlp)}


def test_mlp_hook_counts_blocks_not_attention_layers() -> None:
    backbone = tiny("bart")
    blocks: list[int] = []
    backbone.set_mlp_hook(lambda block, hidden: blocks.append(block) or hidden)
    run(backbone)
    assert sorted(set(blocks)) == list(range(backbone.num_blocks)) == [0, 1, 2, 3]


def test_the_docs_example_method_runs_on_every_family(tmp_path: Any) -> None:
    """docs/methods.md's example, taken verbatim: loads with --methods-dir and is the identity at init."""
    import re
    from pathlib import Path

    from bench.method import METHODS

    text = (Path(__file__).resolve().parents[1] / "docs" / "methods.md").read_text()
    match = re.search(r"```python\n(# my_methods/scaled_values\.py\n.*?)```", text, re.S)
    assert match, "docs/methods.md lost its example"
    (tmp_path / "scaled_values.py").write_text(match.group(1))
    try:
        cls = registry.load_methods((tmp_path,))["scaled_values"]
        for family in FAMILIES:
            backbone = tiny(family)
            frozen = run(backbone)
            module = cls().attach(backbone)
            torch.testing.assert_close(run(backbone), frozen, atol=0, rtol=0)
            with torch.no_grad():
                module.scales.mul_(2.0)
            assert (run(backbone) - frozen).abs().max() > 1e-4
    finally:
        METHODS.pop("scaled_values", None)
