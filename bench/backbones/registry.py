"""Backbone kinds by name: `build_backbone(spec)` and `backbone_skeleton(spec)` look the kind up here, so no
other module branches on the kind. Built-in kinds (vit, gpt2, bart) are added when first needed; another
package adds its own with `@register_backbone(kind)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

from bench.backbones.base import Backbone
from bench.errors import BenchError, did_you_mean

B = TypeVar("B", bound=type[Backbone])

BACKBONES: dict[str, type[Backbone]] = {}


def register_backbone(kind: str) -> Callable[[B], B]:
    """Class decorator: `@register_backbone("gpt2") class GPT2Backbone(LanguageBackbone): ...`."""

    def decorator(cls: B) -> B:
        existing = BACKBONES.get(kind)
        if existing is not None and existing is not cls:
            raise BenchError(f"backbone kind '{kind}' is registered twice: by {existing.__qualname__} and by "
                             f"{cls.__qualname__}.", hint="Rename one of them.")
        cls.kind = kind
        BACKBONES[kind] = cls
        return cls

    return decorator


def _load_builtin() -> None:
    """The built-in adapters, imported on first use (they import torch, and transformers / timm lazily)."""
    from bench.backbones.bart import BartBackbone
    from bench.backbones.gpt2 import GPT2Backbone
    from bench.backbones.vit import ViTBackbone

    for cls in (ViTBackbone, GPT2Backbone, BartBackbone):
        BACKBONES.setdefault(cls.kind, cls)


def backbone_class(kind: str) -> type[Backbone]:
    _load_builtin()
    if kind not in BACKBONES:
        raise BenchError(f"unknown backbone kind '{kind}'.{did_you_mean(kind, list(BACKBONES))}",
                         field="backbone.kind", hint=f"Known kinds: {', '.join(sorted(BACKBONES))}.")
    return BACKBONES[kind]


def build_backbone(spec: Any) -> Backbone:
    """The backbone a task spec names (`spec.kind`), with its weights when the spec asks for them."""
    return backbone_class(spec.kind).from_spec(spec)


def backbone_skeleton(spec: Any) -> Backbone:
    """The backbone's structure on the meta device, from its configuration alone (no weights, no memory):
    shape facts and parameter counts without downloading anything but a config file."""
    with torch.device("meta"):
        return backbone_class(spec.kind).from_config(spec)
