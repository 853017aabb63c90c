"""timm Vision Transformer behind the backbone interface: prefix K/V in every layer through fused SDPA.

The adapter replaces each block's attention by `PrefixAttention`, which keeps timm's parameter names (so
timm checkpoints load unchanged), applies the q/k/v delta and hook to the projected queries, keys and values
and concatenates per-layer prefix keys/values in front of the keys/values. It never changes the timm classes
themselves.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bench.backbones.base import Backbone, PrefixKV
from bench.errors import BenchError
from bench.spec import BackboneSpec, expand_path

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
ORIGINAL_IN21K_URL = "https://storage.googleapis.com/vit_models/imagenet21k/ViT-B_16.npz"


class PrefixAttention(nn.Module):
    """timm's multi-head self-attention, plus optional prefix keys/values that are never queries."""

    def __init__(self, attn: Any) -> None:  # a timm Attention
        super().__init__()
        if getattr(attn, "gate", None) is not None:
            raise ValueError("gated attention is not supported by PrefixAttention")
        self.num_heads: int = attn.num_heads
        self.head_dim: int = attn.head_dim
        self.attn_dim: int = attn.num_heads * attn.head_dim
        self.qkv: nn.Linear = attn.qkv
        self.q_norm: nn.Module = attn.q_norm
        self.k_norm: nn.Module = attn.k_norm
        self.attn_drop: nn.Dropout = attn.attn_drop
        self.norm: nn.Module = attn.norm
        self.proj: nn.Linear = attn.proj
        self.proj_drop: nn.Dropout = attn.proj_drop
        # Set by ViTBackbone.forward for the duration of one call: (B, H, P, Dh) keys and values,
        # and the q/k/v delta and q/k/v hook functions bound to this layer.
        self.prefix: PrefixKV | None = None
        self.delta: Any = None
        self.hook: Any = None
        # Analysis only (bench analyze attention): when a list, each call appends its (B, H, N, P + N) attention
        # probabilities, computed explicitly; training and evaluation leave it None and use the fused kernel.
        self.record: list[torch.Tensor] | None = None

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            raise ValueError("PrefixAttention takes no attention mask: ViT attention is bidirectional")
        B, N, _ = x.shape
        qkv = self.qkv(x)
        if self.delta is not None:
            qkv = qkv + torch.cat([d if d is not None else qkv.new_zeros(B, N, self.attn_dim)
                                   for d in self.delta(x)], dim=-1)
        if self.hook is not None:
            q, k, v = qkv.split(self.attn_dim, dim=-1)
            qkv = torch.cat([self.hook("q", q), self.hook("k", k), self.hook("v", v)], dim=-1)
        qkv = qkv.reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.prefix is not None:
            prefix_k, prefix_v = self.prefix
            k = torch.cat([prefix_k.to(k.dtype), k], dim=2)
            v = torch.cat([prefix_v.to(v.dtype), v], dim=2)
        if self.record is not None:
            probs = torch.softmax((q * self.head_dim**-0.5) @ k.transpose(-2, -1), dim=-1)
            self.record.append(probs.detach())
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        x = x.transpose(1, 2).reshape(B, N, self.attn_dim)
        x = self.norm(x)
        x = self.proj(x)
        return self.proj_drop(x)


class ViTBackbone(Backbone):
    """A timm VisionTransformer (class token, pre-norm blocks); features = CLS after the final norm."""

    kind = "vit"
    modality = "vision"

    def __init__(self, vit: Any) -> None:  # timm's VisionTransformer (typed loosely: timm has no stubs)
        super().__init__()
        if getattr(vit, "cls_token", None) is None:
            raise ValueError("the ViT backbone needs a class token (global_pool='token')")
        self.vit: Any = vit
        for block in vit.blocks:
            block.attn = PrefixAttention(block.attn)
        first = vit.blocks[0].attn
        self.num_layers = len(vit.blocks)
        self.hidden_size = vit.embed_dim
        self.num_heads = first.num_heads
        self.head_dim = first.head_dim
        self.num_prefix_tokens = vit.num_prefix_tokens
        patch = vit.patch_embed.patch_size
        self.patch_size = (int(patch[0]), int(patch[1]))

    @classmethod
    def from_spec(cls, spec: Any) -> ViTBackbone:
        return build_vit(spec)

    @classmethod
    def from_config(cls, spec: Any) -> ViTBackbone:
        return build_vit(spec.model_copy(update={"pretrained": False, "weights": None}))

    def mlp_projections(self) -> list[nn.Module]:
        return [block.mlp.fc2 for block in self.vit.blocks]

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        vit = self.vit
        x = vit.patch_embed(images)
        x = vit._pos_embed(x)
        x = vit.patch_drop(x)
        return vit.norm_pre(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.embed(images)
        batch = x.shape[0]
        if self.input_tokens is not None:
            tokens = self.input_tokens(batch).to(x.dtype).expand(batch, -1, -1)
            x = torch.cat([x[:, : self.num_prefix_tokens], tokens, x[:, self.num_prefix_tokens :]], dim=1)
        for index, block in enumerate(self.vit.blocks):
            if self.token_hook is not None:
                x = self.token_hook(index, x)
            block.attn.prefix = self._prefix_for(index, batch)
            if self.qkv_delta is not None:
                block.attn.delta = functools.partial(self.qkv_delta, index)
            if self.qkv_hook is not None:
                block.attn.hook = functools.partial(self.qkv_hook, index)
            try:
                x = block(x)
            finally:
                block.attn.prefix = None
                block.attn.delta = None
                block.attn.hook = None
            if self.layer_output_hook is not None:
                x = self.layer_output_hook(index, x)
        x = self.vit.norm(x)
        return x[:, 0]

    def _prefix_for(self, layer: int, batch: int) -> PrefixKV | None:
        kv = self.checked_prefix(layer, batch)
        if kv is None:
            return None
        keys, values = kv
        return _to_sdpa_layout(keys, batch), _to_sdpa_layout(values, batch)

    def project_kv(self, layer: int, x: torch.Tensor) -> PrefixKV:
        block = self.vit.blocks[layer]
        attn = block.attn
        h = block.norm1(x)
        dim = attn.attn_dim
        weight, bias = attn.qkv.weight, attn.qkv.bias
        k = F.linear(h, weight[dim : 2 * dim], None if bias is None else bias[dim : 2 * dim])
        v = F.linear(h, weight[2 * dim :], None if bias is None else bias[2 * dim :])
        return self.split_heads(k), self.split_heads(v)


def _to_sdpa_layout(t: torch.Tensor, batch: int) -> torch.Tensor:
    """(P, H, Dh) or (B, P, H, Dh) -> (B, H, P, Dh)."""
    if t.dim() == 3:
        t = t.unsqueeze(0)
    if t.dim() != 4:
        raise ValueError(f"prefix keys/values must be (P, H, Dh) or (B, P, H, Dh), got shape {tuple(t.shape)}")
    return t.transpose(1, 2).expand(batch, -1, -1, -1)


# ---------------------------------------------------------------- building and weights


def resolve_weights_path(weights: str) -> Path:
    """'bench:<file>' names a file shipped in bench/assets; anything else is a (possibly ~ / ${VAR}) path."""
    if weights.startswith("bench:"):
        return ASSETS_DIR / weights.removeprefix("bench:")
    return Path(expand_path(weights))


def build_vit(spec: BackboneSpec) -> ViTBackbone:
    """Create the timm model offline, then load weights from a local file or the hub cache."""
    import timm

    kwargs: dict[str, Any] = {
        "num_classes": 0,
        "global_pool": "token",
        "pos_drop_rate": spec.dropout,
        "proj_drop_rate": spec.dropout,
        "attn_drop_rate": 0.0,
        **spec.model_kwargs,
    }
    try:
        if not spec.pretrained:
            model = timm.create_model(spec.model, pretrained=False, **kwargs)
        elif spec.weights:
            model = _create_from_file(spec, kwargs)
        else:
            model = _create_from_hub(spec, kwargs)
    except BenchError:
        raise
    except (RuntimeError, TypeError, ValueError) as exc:
        if "Unknown model" in str(exc) or "unexpected keyword" in str(exc):
            raise BenchError(
                f"timm cannot build '{spec.model}' with {spec.model_kwargs}: {exc}",
                field="backbone.model",
                hint="Use a timm model name (timm.list_models('vit_*')) and valid constructor arguments.",
            ) from exc
        raise
    # VPT's ViT (jeonsworld port) has dropout in the MLP and embeddings only, none after the attention projection.
    blocks: Any = model.blocks
    for block in blocks:
        block.attn.proj_drop.p = 0.0
    return ViTBackbone(model)


def _create_from_file(spec: BackboneSpec, kwargs: dict[str, Any]) -> nn.Module:
    import timm

    assert spec.weights is not None
    path = resolve_weights_path(spec.weights)
    if not path.is_file():
        raise BenchError(
            f"weight file {path} does not exist.",
            field="backbone.weights",
            hint=_weights_hint(spec),
        )
    # Google's original .npz checkpoints need timm's custom loader; everything else is a state dict.
    overlay = {"file": str(path), "custom_load": path.suffix == ".npz"}
    try:
        return timm.create_model(spec.model, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except Exception as exc:  # torch, numpy and safetensors each raise their own types for a bad file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(
            f"could not load weights from {path}: {first_line[:300]}",
            field="backbone.weights",
            hint="Check that the file is complete and matches backbone.model / backbone.model_kwargs.",
        ) from exc


def _create_from_hub(spec: BackboneSpec, kwargs: dict[str, Any]) -> nn.Module:
    import timm

    from bench.hub import prefer_offline

    prefer_offline()  # offline: the hub cache or an immediate error, never minutes of retries
    try:
        return timm.create_model(spec.model, pretrained=True, **kwargs)
    except Exception as exc:  # hub errors come in many types (offline, HTTP, missing cache entry)
        if _looks_like_download_failure(exc):
            raise BenchError(
                f"pre-trained weights for '{spec.model}' are not available offline ({type(exc).__name__}).",
                field="backbone.weights",
                hint=_weights_hint(spec),
            ) from exc
        raise


def _looks_like_download_failure(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _exception_chain(exc)}
    download_errors = {
        "LocalEntryNotFoundError",
        "OfflineModeIsEnabled",
        "ConnectionError",
        "HTTPError",
        "HfHubHTTPError",
        "RepositoryNotFoundError",
        "EntryNotFoundError",
        "URLError",
        "ConnectError",
        "ConnectTimeout",
        "TimeoutError",
        "gaierror",
    }
    return bool(names & download_errors) or isinstance(exc, OSError)


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _weights_hint(spec: BackboneSpec) -> str:
    hub = f"timm/{spec.model}"
    hint = (
        f"With network, leave backbone.weights unset and the weights come from the Hugging Face hub ('{hub}'); "
        f"offline, download them once (huggingface-cli download {hub}) or set backbone.weights to a local "
        ".safetensors/.pth/.npz file."
    )
    if spec.model.startswith("vit_base_patch16_224.orig_in21k"):
        hint += f" The original Google ImageNet-21k file used by VPT is {ORIGINAL_IN21K_URL}."
    return hint
