"""`bench perf peft`: a Deep-share training step on GPT-2 against HF peft's prefix tuning (with projection).

Both sides get the same GPT-2 weights, the same batch and the same prefix: peft's prefix encoder
(embedding -> Linear -> tanh -> Linear, output blocks [K0, V0, K1, V1, ...]) is copied into our Deep-share
module, so the first-step losses must agree (peft passes the prefix as past_key_values, which shifts GPT-2
positions by the prefix length; our backbone does the same with `shift_positions`). Steps of the two
alternate in rounds and medians are compared, so machine noise hits both alike. A benchmark, not a test.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from bench.errors import BenchError
from bench.spec import LanguageBackboneSpec


@dataclass(frozen=True)
class PeftComparison:
    ours_s: float
    peft_s: float
    ours_loss: float
    peft_loss: float
    trainable_ours: int
    trainable_peft: int

    @property
    def ratio(self) -> float:
        return self.ours_s / self.peft_s


def build_pair(config_kwargs: dict[str, Any], positions: int, mlp_hidden: int, device: torch.device
               ) -> tuple[Any, Any, Any]:
    """(our model, our Deep-share module, the peft model), sharing GPT-2 weights and the prefix."""
    try:
        from peft import PrefixTuningConfig, TaskType, get_peft_model
    except ImportError as exc:
        raise BenchError("`bench perf peft` needs HF peft.", hint="pip install 'peft-bench[perf]' (or peft).") from exc
    from transformers import GPT2Config, GPT2LMHeadModel

    from bench import registry
    from bench.backbones.gpt2 import GPT2Backbone
    from bench.train.model import PeftModel as LanguagePeftModel

    torch.manual_seed(0)
    config = GPT2Config(**config_kwargs)
    base = GPT2LMHeadModel(config).eval()
    peft_model = get_peft_model(copy.deepcopy(base), PrefixTuningConfig(
        task_type=TaskType.CAUSAL_LM, num_virtual_tokens=positions, prefix_projection=True,
        encoder_hidden_size=mlp_hidden))
    backbone = GPT2Backbone(base, None, LanguageBackboneSpec(kind="gpt2", model="perf", shift_positions=True))
    method_cls = registry.get_method("deep_share")
    method = method_cls(method_cls.parse_hparams({"num_tokens": 2 * positions, "mlp_hidden": mlp_hidden,
                                                 "dropout": 0.0}))
    ours = LanguagePeftModel(backbone, method)
    encoder: Any = peft_model.prompt_encoder["default"]
    module: Any = ours.method_module
    with torch.no_grad():
        module.tables[0].copy_(encoder.embedding.weight)
        module.mlps[0][0].load_state_dict(encoder.transform[0].state_dict())
        module.mlps[0][2].load_state_dict(encoder.transform[2].state_dict())
    return ours.to(device), module, peft_model.to(device)


def compare(batch: int = 8, length: int = 64, steps: int = 20, device: torch.device | None = None,
            config_kwargs: dict[str, Any] | None = None, positions: int = 10, mlp_hidden: int = 512,
            warmup: int = 3) -> PeftComparison:
    device = device or torch.device("cpu")
    config_kwargs = config_kwargs or {"n_embd": 256, "n_layer": 4, "n_head": 4, "vocab_size": 1000,
                                      "n_positions": 256}
    ours, _, peft_model = build_pair(config_kwargs, positions, mlp_hidden, device)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config_kwargs["vocab_size"], (batch, length), generator=generator).to(device)
    mask = torch.ones_like(ids)
    ours.train()
    peft_model.train()
    peft_model.base_model.eval()  # same as ours: no dropout in the frozen GPT-2
    optim_ours = torch.optim.AdamW([p for p in ours.parameters() if p.requires_grad], lr=1e-4)
    optim_peft = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4)

    def step_ours() -> float:
        loss = ours.backbone(input_ids=ids, attention_mask=mask, labels=ids).loss
        optim_ours.zero_grad(set_to_none=True)
        loss.backward()
        optim_ours.step()
        return float(loss.detach())

    def step_peft() -> float:
        loss = peft_model(input_ids=ids, attention_mask=mask, labels=ids).loss
        optim_peft.zero_grad(set_to_none=True)
        loss.backward()
        optim_peft.step()
        return float(loss.detach())

    first_ours, first_peft = step_ours(), step_peft()
    for _ in range(warmup):
        step_ours()
        step_peft()
    times_ours: list[float] = []
    times_peft: list[float] = []
    for _ in range(steps):  # alternate, so drifts in machine speed hit both sides alike
        for step, times in ((step_ours, times_ours), (step_peft, times_peft)):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    trainable_ours = sum(p.numel() for p in ours.parameters() if p.requires_grad)
    trainable_peft = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    return PeftComparison(statistics.median(times_ours), statistics.median(times_peft), first_ours, first_peft,
                          trainable_ours, trainable_peft)


def report(result: PeftComparison, batch: int, length: int, device: torch.device) -> str:
    verdict = "within" if result.ratio <= 1.0 else "OVER"
    return (f"GPT-2 training step, batch {batch} x {length} tokens on {device}:\n"
            f"  bench deep_share  {result.ours_s * 1e3:8.2f} ms  ({result.trainable_ours:,} trainable)\n"
            f"  peft prefix (proj){result.peft_s * 1e3:8.2f} ms  ({result.trainable_peft:,} trainable)\n"
            f"  ratio {result.ratio:.3f} ({verdict} the 1.0 budget)\n"
            f"  first-step loss: bench {result.ours_loss:.6f}, peft {result.peft_loss:.6f} "
            f"(difference {abs(result.ours_loss - result.peft_loss):.2e})")
