"""Backbones behind one small interface, so that a method never knows which network it runs on."""

from typing import Any

from bench.backbones.base import Backbone, PrefixKV, PrefixProvider, QKVDelta, TokenHook

__all__ = ["Backbone", "PrefixKV", "PrefixProvider", "QKVDelta", "TokenHook", "build_backbone"]


def build_backbone(spec: Any) -> Backbone:
    """Build the backbone a task spec names (timm and transformers are imported lazily)."""
    if spec.kind == "vit":
        from bench.backbones.vit import build_vit

        return build_vit(spec)
    from bench.backbones.language import build_language_backbone

    return build_language_backbone(spec)
