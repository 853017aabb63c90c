"""Backbones behind one small interface, so that a method never knows which network it runs on."""

from bench.backbones.base import Backbone, PrefixKV, PrefixProvider, QKVDelta, TokenHook
from bench.spec import BackboneSpec

__all__ = ["Backbone", "PrefixKV", "PrefixProvider", "QKVDelta", "TokenHook", "build_backbone"]


def build_backbone(spec: BackboneSpec) -> Backbone:
    """Build the backbone a task spec names (the ViT adapter imports timm lazily)."""
    from bench.backbones.vit import build_vit

    if spec.kind == "vit":
        return build_vit(spec)
    raise ValueError(f"unknown backbone kind {spec.kind!r}")
