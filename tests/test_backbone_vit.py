"""The ViT adapter: prefix attention parity with a naive softmax, empty prefix = frozen timm model,
project_kv = the layer's own LayerNorm + W_K/W_V, and weight loading up to the file read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.backbones.vit import build_vit
from bench.errors import BenchError
from bench.spec import BackboneSpec

KWARGS = {"img_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 3, "num_heads": 4}
SPEC = BackboneSpec(model="vit_base_patch16_224", pretrained=False, model_kwargs=KWARGS)


def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_vit(SPEC).eval()


def naive_block_forward(block: torch.nn.Module, x: torch.Tensor, prefix_k: torch.Tensor, prefix_v: torch.Tensor
                        ) -> torch.Tensor:
    """A transformer block written out by hand: explicit softmax over [prefix keys; keys]."""
    attn = block.attn
    B, N, C = x.shape
    H, Dh = attn.num_heads, attn.head_dim
    h = block.norm1(x)
    q, k, v = attn.qkv(h).reshape(B, N, 3, H, Dh).permute(2, 0, 3, 1, 4)
    k = torch.cat([prefix_k.permute(1, 0, 2).expand(B, H, -1, Dh), k], dim=2)
    v = torch.cat([prefix_v.permute(1, 0, 2).expand(B, H, -1, Dh), v], dim=2)
    weights = torch.softmax(q @ k.transpose(-1, -2) / Dh**0.5, dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(B, N, C)
    x = x + attn.proj(out)
    return x + block.mlp(block.norm2(x))


def test_prefix_attention_matches_naive_softmax() -> None:
    backbone = tiny()
    images = torch.randn(2, 3, 16, 16)
    prefixes = {i: (torch.randn(5, 4, 8), torch.randn(5, 4, 8)) for i in range(3)}
    backbone.set_prefix_provider(lambda layer, batch: prefixes[layer], positions=5)
    got = backbone(images)
    x = backbone.embed(images)
    for i, block in enumerate(backbone.vit.blocks):
        x = naive_block_forward(block, x, *prefixes[i])
    expected = backbone.vit.norm(x)[:, 0]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_prefix_gets_gradients_and_per_example_prefixes_work() -> None:
    backbone = tiny()
    keys = torch.randn(2, 3, 4, 8, requires_grad=True)  # (batch, P, heads, head_dim)
    values = torch.randn(3, 4, 8, requires_grad=True)
    backbone.set_prefix_provider(lambda layer, batch: (keys, values.expand(batch, -1, -1, -1)) if layer == 1 else None,
                                 positions=3)
    (backbone(torch.randn(2, 3, 16, 16)) * torch.randn(2, 32)).sum().backward()  # LayerNorm output sums to a constant
    assert keys.grad is not None and keys.grad.abs().sum() > 0
    assert values.grad is not None and values.grad.abs().sum() > 0


def test_no_prefix_equals_frozen_timm_model() -> None:
    backbone = tiny()
    images = torch.randn(3, 3, 16, 16)
    expected = backbone.vit.forward_features(images)[:, 0]
    torch.testing.assert_close(backbone(images), expected, atol=0, rtol=0)
    backbone.set_prefix_provider(lambda layer, batch: None, positions=0)
    torch.testing.assert_close(backbone(images), expected, atol=0, rtol=0)


def test_project_kv_is_layer_norm_then_wk_wv_with_bias() -> None:
    backbone = tiny()
    prompts = torch.randn(7, 32)
    k, v = backbone.project_kv(2, prompts)
    block = backbone.vit.blocks[2]
    qkv = block.attn.qkv(block.norm1(prompts))
    torch.testing.assert_close(k, qkv[:, 32:64].reshape(7, 4, 8))
    torch.testing.assert_close(v, qkv[:, 64:].reshape(7, 4, 8))
    assert backbone.num_layers == 3 and backbone.hidden_size == 32 and backbone.num_heads == 4
    assert backbone.head_dim == 8 and backbone.num_prefix_tokens == 1


def test_token_hook_runs_before_every_layer() -> None:
    backbone = tiny()
    seen = []

    def hook(layer: int, x: torch.Tensor) -> torch.Tensor:
        seen.append((layer, x.shape[1]))
        return torch.cat([x[:, :1], torch.zeros(x.shape[0], 2, x.shape[2]), x[:, 1:]], dim=1) if layer == 0 else x

    backbone.set_token_hook(hook)
    backbone(torch.randn(1, 3, 16, 16))
    assert seen == [(0, 17), (1, 19), (2, 19)]


def test_vit_b16_shape_facts_on_meta_device() -> None:
    spec = BackboneSpec(model="vit_base_patch16_224.orig_in21k", pretrained=False)
    with torch.device("meta"):
        backbone = build_vit(spec)
    assert backbone.backbone_parameter_count() == 85_798_656
    assert (backbone.num_layers, backbone.hidden_size, backbone.num_heads, backbone.head_dim) == (12, 768, 12, 64)


def test_weights_load_from_a_local_safetensors_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = tiny()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.vit.state_dict().items()}, path)
    loaded = build_vit(SPEC.model_copy(update={"pretrained": True, "weights": str(path)})).eval()
    images = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(loaded(images), source(images))


def test_missing_and_corrupt_weight_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"backbone.weights.*does not exist.*huggingface-cli download"):
        build_vit(SPEC.model_copy(update={"pretrained": True, "weights": str(tmp_path / "nope.safetensors")}))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(BenchError, match="could not load weights from"):
        build_vit(SPEC.model_copy(update={"pretrained": True, "weights": str(bad)}))
    bad_npz = tmp_path / "ViT-B_16.npz"
    bad_npz.write_bytes(b"not an npz either")
    with pytest.raises(BenchError, match="could not load weights from"):
        build_vit(SPEC.model_copy(update={"pretrained": True, "weights": str(bad_npz)}))


def test_hub_weights_offline_give_a_download_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    spec = BackboneSpec(model="vit_base_patch16_224.orig_in21k")
    with pytest.raises(BenchError) as info:
        build_vit(spec)
    text = str(info.value)
    assert "timm/vit_base_patch16_224.orig_in21k" in text and "ViT-B_16.npz" in text


def test_default_backbone_is_the_original_in21k_checkpoint_vpt_used() -> None:
    import timm

    from bench.spec import TaskSpec

    default = TaskSpec.model_fields["backbone"].default
    assert default.model == "vit_base_patch16_224.orig_in21k" and default.pretrained and default.weights is None
    cfg = timm.models.get_pretrained_cfg("vit_base_patch16_224.orig_in21k")
    # Google's ImageNet-21k ViT-B/16, without its head
    assert cfg.hf_hub_id == "timm/vit_base_patch16_224.orig_in21k" and cfg.num_classes == 0
    augreg = timm.models.get_pretrained_cfg("vit_base_patch16_224.augreg_in21k")
    assert augreg.num_classes == 21843  # the other in21k checkpoint, which VPT did not use
