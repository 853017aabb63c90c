"""Parameter counts of methods on a task's backbone, built on the meta device (no weights, no memory)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from bench.method import Method
from bench.spec import AnyTaskSpec, TextTaskSpec


@dataclass(frozen=True)
class ParamCount:
    method: str
    trained: int  # trainable parameters of the method, head excluded
    stored: int  # what must be kept after training (e.g. Deep-share's generated keys/values, not its MLP)
    head: int
    backbone: int

    @property
    def trained_percent(self) -> float:
        return 100.0 * self.trained / self.backbone


def count_parameters(task: AnyTaskSpec, method_cls: type[Method], hparams: Mapping[str, object] | None = None
                     ) -> ParamCount:
    from bench.backbones.vit import build_vit
    from bench.train.model import PeftModel

    if isinstance(task, TextTaskSpec):
        return _count_language(task, method_cls, hparams)

    spec = task.backbone.model_copy(update={"pretrained": False, "weights": None})
    with torch.device("meta"):
        backbone = build_vit(spec)
        method = method_cls(method_cls.parse_hparams(dict(hparams or {})))
        model = PeftModel(backbone, method, task.data.num_classes)
    head = model.head_parameter_count
    return ParamCount(method_cls.name, model.method_trainable, model.method_stored, head, model.backbone_params)


def _count_language(task: TextTaskSpec, method_cls: type[Method], hparams: Mapping[str, object] | None
                    ) -> ParamCount:
    """The language backbone from its config alone (a local folder, or the hub cache), on the meta device."""
    from transformers import AutoConfig, BartForConditionalGeneration, GPT2LMHeadModel

    from bench.backbones.language import BartBackbone, GPT2Backbone, resolve_model_path
    from bench.errors import BenchError
    from bench.train.model import PeftModel as LanguagePeftModel

    spec = task.backbone
    try:
        config = AutoConfig.from_pretrained(resolve_model_path(spec.model), revision=spec.revision,
                                            **spec.config_overrides)
    except OSError as exc:
        raise BenchError(f"cannot read the config of '{spec.model}' to count parameters: "
                         f"{str(exc).splitlines()[0]}", field="backbone.model",
                         hint="Counting needs only config.json: a local folder or the Hugging Face cache.") from exc
    with torch.device("meta"):
        if spec.kind == "gpt2":
            backbone: GPT2Backbone | BartBackbone = GPT2Backbone(GPT2LMHeadModel(config), None, spec)
        else:
            backbone = BartBackbone(BartForConditionalGeneration(config), None, spec)
        method = method_cls(method_cls.parse_hparams(dict(hparams or {})))
        model = LanguagePeftModel(backbone, method)
    return ParamCount(method_cls.name, model.method_trainable, model.method_stored, 0, model.backbone_params)
