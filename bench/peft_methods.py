"""`peft:` methods: HF peft's own adapters (LoraConfig, IA3Config, ...) injected into a backbone, named by config.

`--method 'peft:LoraConfig(r=8, lora_alpha=8, target_modules=[qkv])'` runs peft's LoRA through the same protocol as
every built-in method. bench.peft_spec reads and canonicalises the text; here it becomes a Method whose one
hyper-parameter `config` holds the canonical text, whose runs are stored under `peft-<kind>-<hash>`, and whose code
identity adds the installed peft version. This module changes a backbone only through `peft.inject_adapter_in_model`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import field_validator
from torch import nn

from bench.errors import BenchError
from bench.method import ADAMW_GRID, Method, MethodHParams
from bench.peft_spec import PREFIX, PeftSpec, first_line, require_peft, resolve

if TYPE_CHECKING:
    from bench.backbones.base import Backbone
    from bench.spec import AnyTaskSpec


# ---------------------------------------------------------------- the method


class PeftHParams(MethodHParams):
    """The one hyper-parameter of a `peft:` method: its config, in canonical text (fixed by the method's name)."""

    method_name: ClassVar[str] = ""
    config: str

    @field_validator("config")
    @classmethod
    def _canonical(cls, value: str) -> str:
        spec = resolve(value if value.startswith(PREFIX) else PREFIX + value, field="hparams.config")
        if cls.method_name and spec.name != cls.method_name:
            raise ValueError(f"this method is {cls.method_name}; {spec.text} is {spec.name} (a peft method's config "
                             "is fixed by its name: give another config as another --method peft:...)")
        return spec.text


class PeftMethod(Method[PeftHParams]):
    """HF peft's adapters from a peft config, injected into the backbone's own modules (AdamW)."""

    HParams = PeftHParams
    optimizer = "adamw"
    grid = ADAMW_GRID
    modalities = ("vision", "language")

    @classmethod
    def own_code_identity(cls) -> str:
        """What bench.identity.code_identity records: the code of bench/peft_methods.py and bench/peft_spec.py, and
        the installed peft version (an upgrade of peft gives its runs new keys)."""
        return f"{_source_identity()}+peft-{require_peft().__version__}"

    @classmethod
    def check_task(cls, task: AnyTaskSpec) -> None:
        """Before anything runs: inject into the task's backbone skeleton (meta device, no weights, adapters left
        uninitialised), so a module name the backbone lacks, or one peft cannot wrap, is refused at once. A backbone
        that cannot be built, or an initialisation that needs real weights, is left to the run."""
        from bench.backbones import backbone_skeleton

        try:
            backbone = backbone_skeleton(task.backbone)
        except BenchError:
            return
        with torch.device("meta"):
            _inject(resolve(PREFIX + cls(cls.parse_hparams({})).hp.config), cls.name, backbone,
                    low_cpu_mem_usage=True)

    def attach(self, backbone: Backbone) -> nn.Module:
        _inject(resolve(PREFIX + self.hp.config, field="hparams.config"), self.name, backbone)
        return PeftAdapters(backbone)


def _inject(spec: PeftSpec, name: str, backbone: Backbone, low_cpu_mem_usage: bool = False) -> None:
    """peft's layers into the backbone's modules; what peft refuses (a name, a module type) as one paragraph."""
    peft = require_peft()
    try:
        peft.inject_adapter_in_model(spec.build(), backbone, low_cpu_mem_usage=low_cpu_mem_usage)
    except (ValueError, TypeError, KeyError) as exc:
        raise BenchError(
            f"peft cannot apply {PREFIX}{spec.text} ({name}) to the {backbone.kind} backbone: {first_line(exc)}",
            field="--method",
            hint=f"Module names on this backbone: {', '.join(module_names(backbone))}; target_modules matches a "
            "module whose name is one of them or ends with '.' + one of them (docs/methods.md, \"HF peft "
            "configs\").") from exc


@cache
def _source_identity() -> str:
    """This file and bench/peft_spec.py (how a config is read and built), without docstrings and layout."""
    from bench.identity import normalized_source

    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in (here / "peft_methods.py", here / "peft_spec.py"):
        digest.update(normalized_source(path).encode())
    return digest.hexdigest()[:16]


def method_class(text: str) -> type[PeftMethod]:
    """The method a `peft:` text names (the same class for every spelling of one config)."""
    return _spec_class(resolve(text if text.startswith(PREFIX) else PREFIX + text).text)


@cache
def _spec_class(canonical: str) -> type[PeftMethod]:
    spec = resolve(PREFIX + canonical)
    hparams = _hparams_class(spec.name, {"__annotations__": {"config": "str"}, "config": spec.text})
    return _method(spec.name, hparams, f"HF peft {spec.text}")


@cache
def stored_method_class(name: str) -> type[PeftMethod]:
    """The method of stored runs named `name` (peft-<kind>-<hash>): its config comes with the run's hparams."""
    return _method(name, _hparams_class(name, {}), f"HF peft config stored as {name}")


def _hparams_class(name: str, namespace: dict[str, Any]) -> type[PeftHParams]:
    hparams: type[PeftHParams] = type(f"PeftHParams_{name.replace('-', '_')}", (PeftHParams,),
                                      {**namespace, "method_name": name, "__module__": __name__})
    return hparams


def _method(name: str, hparams: type[PeftHParams], doc: str) -> type[PeftMethod]:
    cls: type[PeftMethod] = type(f"Peft_{name.replace('-', '_')}", (PeftMethod,),
                                 {"HParams": hparams, "__doc__": doc, "__module__": __name__})
    cls.name = name  # not in bench.method.METHODS: `--method all` and `bench list methods` stay the built-in ones
    cls.source = "bench.peft_methods"
    return cls


def module_names(backbone: nn.Module) -> list[str]:
    """The last name components of the backbone's modules that hold weights (what target_modules can name)."""
    return sorted({name.rsplit(".", 1)[-1] for name, module in backbone.named_modules()
                   if name and any(True for _ in module.parameters(recurse=False))})


# ---------------------------------------------------------------- the module attach() returns


class PeftAdapters(nn.Module):
    """The adapters peft injected into a backbone, as the method's module: it lists their parameters (registered
    once, in the backbone, under peft's names, which is where the run's state and checkpoints find them) and gives
    them the method's train / eval mode.

    The runner keeps a PEFT method's backbone in eval mode (no backbone dropout), which would also switch off peft's
    own dropout (lora_dropout, LoHa's rank and module dropout). A forward pre-hook on each adapter layer therefore
    sets the adapter's modules (never the frozen base layer it wraps) to this module's mode, as a built-in method's
    own module has its mode."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        from peft.tuners.tuners_utils import BaseTunerLayer

        object.__setattr__(self, "backbone", backbone)  # not a submodule: the backbone stays the runner's child
        for layer in backbone.modules():
            if isinstance(layer, BaseTunerLayer) and isinstance(layer, nn.Module):
                base = getattr(layer, "base_layer", None)
                frozen = {id(m) for m in base.modules()} if isinstance(base, nn.Module) else set()
                adapter = [m for m in layer.modules() if id(m) not in frozen]
                layer.register_forward_pre_hook(_FollowMode(self, adapter))

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
                         ) -> Iterator[tuple[str, nn.Parameter]]:
        backbone: nn.Module = self.__dict__["backbone"]
        for name, parameter in backbone.named_parameters(prefix, recurse, remove_duplicate):
            if parameter.requires_grad:
                yield name, parameter


class _FollowMode:
    """Forward pre-hook on an adapter layer: its adapter modules take the mode of the method's module. An object,
    not a closure, so a deep copy of the model gets hooks that point at the copy."""

    def __init__(self, adapters: PeftAdapters, modules: list[nn.Module]) -> None:
        self.adapters, self.modules = adapters, modules

    def __call__(self, layer: nn.Module, inputs: tuple[Any, ...]) -> None:
        mode = self.adapters.training
        if self.modules[0].training != mode:
            for module in self.modules:
                module.training = mode
