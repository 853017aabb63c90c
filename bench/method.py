"""The method API: a PEFT method is typed hyper-parameters plus `attach(backbone)`, registered by name.

A method file must only talk to the backbone interface (bench.backbones.base), never to a specific
network, so the same file serves ViT, GPT-2 and BART. The runner never branches on method names.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.errors import BenchError

if TYPE_CHECKING:
    from torch import nn

    from bench.backbones.base import Backbone

GridValue = float | int | str | bool

# VPT's fine-tuning grid (configs/finetune): for methods trained with AdamW (full FT, BitFit, LoRA, adapters).
ADAMW_GRID: dict[str, list[GridValue]] = {
    "base_lr": [0.005, 0.001, 0.0005, 0.0001],
    "weight_decay": [0.01, 0.001, 0.0001, 0.0],
}


# Constrained types for hyper-parameters, so that `--set num_tokens=0` or a dropout of 1.5 is refused before
# anything runs (pydantic checks them when a method's HParams are built).
Count = Annotated[int, Field(ge=1, description="a positive count")]
Probability = Annotated[float, Field(ge=0.0, lt=1.0, description="a probability in [0, 1)")]
Positive = Annotated[float, Field(gt=0.0, description="a positive number")]
PairedCount = Annotated[int, Field(ge=2, description="key/value positions x 2: at least 2 (one position)")]


class MethodHParams(BaseModel):
    """Base class of a method's hyper-parameters: typed, with defaults; unknown names are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


H = TypeVar("H", bound=MethodHParams)


class Method(ABC, Generic[H]):
    """One PEFT method, generic over its hyper-parameter class: `class LoRA(Method[LoRAHParams])` types
    `self.hp` as LoRAHParams. Subclasses set the class attributes and implement `attach`.

    Class attributes:
      HParams          the method's hyper-parameters (the MethodHParams subclass named in Method[...])
      optimizer        'sgd' or 'adamw'; None means the task protocol's optimizer
      grid             default search grid (base_lr, weight_decay and/or HParams fields); None = protocol's
      warmup_epochs    None = protocol's
      trains_backbone  True puts the backbone in train mode (dropout on), as full fine-tuning does
      head_only        True when attach() changes nothing in the backbone and only the head trains (linear
                       probing): the runner then computes the frozen features once and trains on them
      modalities       the task kinds the method applies to ("vision", "language")
    """

    name: ClassVar[str] = ""
    HParams: ClassVar[type[MethodHParams]] = MethodHParams
    optimizer: ClassVar[Literal["sgd", "adamw"] | None] = None
    grid: ClassVar[dict[str, list[GridValue]] | None] = None
    warmup_epochs: ClassVar[int | None] = None
    trains_backbone: ClassVar[bool] = False
    head_only: ClassVar[bool] = False  # True: nothing but the head trains, so backbone features can be cached
    modalities: ClassVar[tuple[str, ...]] = ("vision", "language")  # `--method all` skips the others
    source: ClassVar[str] = ""  # file or entry point the method came from, for messages

    def __init__(self, hparams: H | MethodHParams | None = None) -> None:
        value = hparams if hparams is not None else self.HParams()
        if not isinstance(value, self.HParams):
            raise TypeError(f"method '{self.name}' takes {self.HParams.__name__}, not {type(value).__name__}")
        self.hp: H = cast(H, value)

    @abstractmethod
    def attach(self, backbone: Backbone) -> nn.Module:
        """Attach to a frozen backbone (all its parameters have requires_grad=False on entry).

        Returns the module that owns the method's trainable parameters (it may be the backbone itself, for
        methods that train backbone weights). Hooks are installed through the backbone interface.
        """

    def stored_parameter_count(self, module: nn.Module) -> int:
        """Parameters kept after training (e.g. a prefix MLP is trained but only its output is stored)."""
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    @classmethod
    def parse_hparams(cls, values: dict[str, Any], where: str = "") -> MethodHParams:
        try:
            return cls.HParams.model_validate(values)
        except ValidationError as exc:
            raise hparams_error(cls.name, exc, list(cls.HParams.model_fields), where) from None


def hparams_error(method: str, exc: ValidationError, fields: list[str], where: str = "") -> BenchError:
    """The one error for a refused hyper-parameter, whether the method's class or its catalog entry refused it."""
    err = exc.errors()[0]
    return BenchError(
        f"invalid hyper-parameter for method '{method}': {err['msg']}.",
        file=where or None,
        field=".".join(str(p) for p in err["loc"]),
        hint=f"Hyper-parameters of '{method}': {', '.join(sorted(fields)) or '(none)'}.",
    )


M = TypeVar("M", bound=type[Method[Any]])

# Filled as method files are imported (bench.registry imports them); name -> class.
METHODS: dict[str, type[Method[Any]]] = {}


METHOD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,99}")


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator: `@register_method("deep_share") class DeepShare(Method): ...`."""

    if not METHOD_NAME.fullmatch(name):
        raise BenchError(
            f"'{name}' cannot be a method name: it names folders of the run store and appears in every "
            "table, so it is letters, digits and _ . + - only, starting with a letter or digit.",
            hint="Rename it in @register_method(...).",
        )

    def decorator(cls: M) -> M:
        existing = METHODS.get(name)
        if existing is not None and existing is not cls and _qualname(existing) != _qualname(cls):
            raise BenchError(
                f"method name '{name}' is registered twice: by {_qualname(existing)} and by {_qualname(cls)}.",
                hint="Rename one of them.",
            )
        cls.name = name
        METHODS[name] = cls
        return cls

    return decorator


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
