"""Backbones behind one small interface (base.py), found by kind (registry.py), so a method never knows which
network it runs on."""

from bench.backbones.base import (
    Backbone,
    InputTokens,
    MLPHook,
    PrefixKV,
    PrefixProvider,
    QKVDelta,
    QKVHook,
    TokenHook,
)
from bench.backbones.registry import backbone_class, backbone_skeleton, build_backbone, register_backbone

__all__ = ["Backbone", "InputTokens", "MLPHook", "PrefixKV", "PrefixProvider", "QKVDelta", "QKVHook", "TokenHook",
           "backbone_class", "backbone_skeleton", "build_backbone", "register_backbone"]
