"""`peft:` methods (bench.peft_spec, bench.peft_methods): the text is parsed without eval and canonicalised (one config
written two ways is one method and one run key, with the peft version in its identity); peft's LoRA and IA3 give the
built-in lora and ia3 methods' parameter counts and first training step on the mini ViT, GPT-2 and BART; every allowed
config trains; `bench list methods --params` counts them; a leaderboard holds a `peft:` row next to a built-in."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from bench import api, registry
from bench.backbones import build_backbone
from bench.cli import main
from bench.errors import BenchError
from bench.peft_spec import PEFT_CONFIGS, parse, render, resolve
from bench.spec import BackboneSpec, LanguageBackboneSpec
from bench.train.model import PeftModel
from tests.conftest import TINY_TASK

peft = pytest.importorskip("peft")
pytest.importorskip("transformers")

MINI = {
    "vit": BackboneSpec(model="vit_base_patch16_224", weights="bench:mini_vit.safetensors",
                        model_kwargs={"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 4, "num_heads": 4,
                                      "mlp_ratio": 2.0}),
    "gpt2": LanguageBackboneSpec(kind="gpt2", model="bench:mini_gpt2", shift_positions=True),
    "bart": LanguageBackboneSpec(kind="bart", model="bench:mini_bart"),
}
LORA_TARGETS = {"vit": "[qkv]", "gpt2": "[c_attn]", "bart": "[q_proj,v_proj]"}  # what the built-in lora adapts
IA3 = {  # peft configs computing what the built-in ia3 computes (on the ViT with attention=qkv)
    "vit": ("IA3Config(target_modules=[qkv,fc2],feedforward_modules=[fc2])", {"attention": "qkv"}),
    "gpt2": ("IA3Config(target_modules=[c_attn,mlp.c_proj],feedforward_modules=[mlp.c_proj])", {}),
    "bart": ("IA3Config(target_modules=[q_proj,v_proj,fc2],feedforward_modules=[fc2])", {}),
}
CLASSES = 3


@pytest.fixture(scope="module")
def backbones() -> dict[str, Any]:
    torch.manual_seed(0)
    return {family: build_backbone(spec) for family, spec in MINI.items()}


def model(backbones: dict[str, Any], family: str, name: str, **hparams: object) -> PeftModel:
    cls = registry.get_method(name)
    torch.manual_seed(0)
    return PeftModel(copy.deepcopy(backbones[family]), cls(cls.parse_hparams(hparams)),
                     CLASSES if family == "vit" else None).train()


def batch(family: str) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    if family == "vit":
        return {"images": torch.randn(4, 3, 32, 32, generator=generator),
                "labels": torch.randint(0, CLASSES, (4,), generator=generator)}
    ids = torch.randint(5, 1000, (3, 10), generator=generator)
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0
    if family == "gpt2":
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.randint(5, 1000, (3, 6), generator=generator)}


def loss_of(model: PeftModel, family: str) -> torch.Tensor:
    inputs = batch(family)
    if family == "vit":
        return F.cross_entropy(model(inputs["images"]), inputs["labels"])
    return model(**inputs).loss


def adamw_step(*models: PeftModel) -> None:
    for m in models:
        optimizer = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
        optimizer.step()


def pair(backbones: dict[str, Any], family: str, builtin: str, text: str, **hparams: object
         ) -> tuple[PeftModel, PeftModel]:
    ours, theirs = model(backbones, family, builtin, **hparams), model(backbones, family, "peft:" + text)
    if ours.head is not None and theirs.head is not None:
        theirs.head.load_state_dict(ours.head.state_dict())  # the heads are drawn after different method draws
    return ours, theirs


def attention_projections(backbone: Any, layer: int) -> dict[str, Any]:
    """Test-side knowledge of where peft put its layers: part -> the (wrapped) projection computing it."""
    if backbone.kind == "vit":
        return {"qkv": backbone.vit.blocks[layer].attn.qkv}
    if backbone.kind == "gpt2":
        return {"qkv": backbone.attention_modules()[layer].c_attn}
    attention = backbone.attention_modules()[layer]
    return {"q": attention.q_proj, "v": attention.v_proj}


# ---------------------------------------------------------------- the text and the identity


def test_parser_reads_literals_and_never_evaluates() -> None:
    name, values = parse("peft:LoraConfig(r=8, lora_alpha=16.5, bias='lora_only', use_rslora=true, "
                         "layers_to_transform=null, target_modules=[q_proj, \"v_proj\", mlp.c_proj], x=-1e-3)")
    assert name == "LoraConfig"
    assert values == {"r": 8, "lora_alpha": 16.5, "bias": "lora_only", "use_rslora": True,
                      "layers_to_transform": None, "target_modules": ["q_proj", "v_proj", "mlp.c_proj"], "x": -1e-3}
    for value in values.values():
        assert parse(f"C(v={render(value)})")[1]["v"] == value  # the canonical text reads back unchanged
    for bad in ("LoraConfig(r=__import__('os').system('true'))", "LoraConfig(r=8", "LoraConfig(r=8; r=9)",
                "LoraConfig(r=[1, 2)", "LoraConfig(r=8, r=9)", "LoraConfig(8)", "LoraConfig(r=lambda: 0)"):
        with pytest.raises(BenchError) as caught:
            parse("peft:" + bad)
        assert caught.value.field == "--method" and "peft:ConfigName(key=value" in str(caught.value)


def test_one_config_written_two_ways_is_one_method_and_one_key() -> None:
    from bench.store import run_key
    from bench.train.protocol import make_config, method_settings

    one = "peft:LoraConfig(r=8, lora_alpha=16, target_modules=['v_proj', \"q_proj\"], lora_dropout=0.0)"
    two = "peft:LoraConfig( target_modules = [q_proj,v_proj] , lora_alpha=16.0 )"
    assert resolve(one) == resolve(two)
    assert resolve(one).text == "LoraConfig(lora_alpha=16,target_modules=[q_proj,v_proj])"  # defaults dropped
    assert registry.get_method(one) is registry.get_method(two)
    other = registry.get_method("peft:LoraConfig(lora_alpha=32, target_modules=[q_proj, v_proj])")
    assert other.name != registry.get_method(one).name

    task = registry.load_task_by_name("mini/novel_shapes")
    point = {"base_lr": 0.01, "weight_decay": 0.0}

    def key(text: str) -> tuple[str, dict[str, Any]]:
        cls = registry.get_method(text)
        identity = make_config(task, cls, method_settings(task, cls), point, "final", 42).identity({})
        return run_key(identity), identity

    (key_one, identity), (key_two, _) = key(one), key(two)
    assert key_one == key_two != key("peft:" + other.HParams().config)[0]
    assert identity["method"] == resolve(one).name
    assert identity["hparams"] == {"config": resolve(one).text}
    assert identity["method_code"].endswith(f"+peft-{peft.__version__}")  # a peft upgrade gives new keys


def test_only_peft_configs_that_inject_into_a_backbone_are_allowed() -> None:
    assert {"LoraConfig", "IA3Config"} <= set(PEFT_CONFIGS)
    for text, expected in (("PrefixTuningConfig(num_virtual_tokens=4)", "not among the peft configs"),
                           ("VeraConfig(target_modules=[qkv])", "not among the peft configs"),
                           ("Linear(in_features=3)", "not a peft config class"),
                           ("LoraConfig(lora_alfa=8)", "has no field 'lora_alfa'. Did you mean 'lora_alpha'?"),
                           ("LoraConfig(task_type=CAUSAL_LM)", "saves, loads or wraps a model"),
                           ("LoraConfig(target_modules=[qkv], layers_pattern=blocks)", "peft refuses peft:LoraConfig")):
        with pytest.raises(BenchError, match=expected.replace("(", r"\(").replace("?", r"\?")):
            resolve("peft:" + text)


def test_bad_peft_method_is_one_paragraph_and_exit_2_before_anything_runs(
        tiny_tasks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "runs"
    for method, expected in (("peft:PrefixTuningConfig()", "PrefixTuningConfig"),
                             ("peft:LoraConfig(r=8,target_modules=[c_attn])", "Module names on this backbone:"),
                             ("peft:LoraConfig(r=[8", "cannot read the peft config")):
        code = main(["run", "--task", "tiny/colors", "--tasks-dir", str(tiny_tasks_dir), "--method", method,
                     "--results", str(results)])
        lines = capsys.readouterr().err.rstrip("\n").splitlines()
        paragraph = lines[next(i for i, line in enumerate(lines) if line.startswith("error:")):]
        assert code == 2 and all(line.strip() for line in paragraph)  # one paragraph, the last thing printed
        assert expected in " ".join(paragraph) and not any("Traceback" in line for line in lines)
    assert not list(results.rglob("run.json"))


# ---------------------------------------------------------------- the same computation as the built-ins


@pytest.mark.parametrize("family", ["vit", "gpt2", "bart"])
def test_peft_lora_gives_the_builtin_lora_counts_and_first_step(backbones: dict[str, Any], family: str) -> None:
    text = f"LoraConfig(r=8,lora_alpha=8,target_modules={LORA_TARGETS[family]})"
    ours, theirs = pair(backbones, family, "lora", text, rank=8, alpha=8.0)
    assert ours.method_trainable == theirs.method_trainable == theirs.method_stored  # 4·r·hidden per layer on each
    with torch.no_grad():  # B = 0 on both sides: at init both are the frozen network
        assert torch.allclose(loss_of(ours, family), loss_of(theirs, family), atol=1e-6)
    module: Any = ours.method_module
    width = ours.backbone.attention_dim
    generator = torch.Generator().manual_seed(2)
    pairs = []  # (ours A, ours B, theirs A, theirs B rows) per adapted q / v
    with torch.no_grad():  # off the B = 0 init: the same A, the same random B (peft's key rows stay 0)
        for layer in range(ours.backbone.num_layers):
            projections = attention_projections(theirs.backbone, layer)
            for which, part in enumerate("qv"):
                fused = "qkv" in projections
                wrapped = projections["qkv" if fused else part]
                a, b = wrapped.lora_A["default"].weight, wrapped.lora_B["default"].weight
                rows = slice(2 * width * which, 2 * width * which + width) if fused else slice(None)
                module.down[layer, which].copy_(a)
                b[rows] = 0.1 * torch.randn(b[rows].shape, generator=generator)
                module.up[layer, which].copy_(b[rows])
                pairs.append((module.down, module.up, layer, which, a, b, rows, fused))
    loss_ours, loss_theirs = loss_of(ours, family), loss_of(theirs, family)
    assert abs(loss_ours.item() - loss_theirs.item()) < 1e-5 and loss_ours.item() > 0
    loss_ours.backward()
    loss_theirs.backward()
    for down, up, layer, which, a, b, rows, fused in pairs:
        assert up.grad is not None and b.grad is not None and a.grad is not None and down.grad is not None
        torch.testing.assert_close(b.grad[rows], up.grad[layer, which], atol=1e-6, rtol=1e-4)
        if fused:  # one A shared by q, k and v: its gradient is the sum of the built-in's q and v gradients
            torch.testing.assert_close(a.grad, down.grad[layer].sum(0), atol=1e-6, rtol=1e-4)
        else:
            torch.testing.assert_close(a.grad, down.grad[layer, which], atol=1e-6, rtol=1e-4)
    adamw_step(ours, theirs)
    for down, up, layer, which, a, b, rows, fused in pairs:
        torch.testing.assert_close(b[rows], up[layer, which], atol=1e-6, rtol=1e-5)  # the updated values
        if not fused:
            torch.testing.assert_close(a, down[layer, which], atol=1e-6, rtol=1e-5)
    if family == "bart":  # separate q and v projections: the same network after the step
        with torch.no_grad():
            assert abs(loss_of(ours, family).item() - loss_of(theirs, family).item()) < 1e-5


def ia3_vectors(ours: PeftModel, theirs: PeftModel) -> list[tuple[Any, int | None, Any, slice]]:
    """(ours table, its row or None, theirs vector, its slice) for every rescaling vector: the attention parts per
    layer, then the MLP input per block."""
    module: Any = ours.method_module
    width = ours.backbone.attention_dim
    found: list[tuple[Any, int | None, Any, slice]] = []
    for layer in range(ours.backbone.num_layers):
        for parts, wrapped in attention_projections(theirs.backbone, layer).items():
            for index, part in enumerate(parts):
                found.append((module.attention[part], layer, wrapped.ia3_l["default"],
                              slice(index * width, (index + 1) * width)))
    for block, projection in enumerate(theirs.backbone.mlp_projections()):
        found.append((module.feedforward[block], None, projection.ia3_l["default"], slice(None)))
    return found


def pick(tensor: torch.Tensor, row: int | None) -> torch.Tensor:
    return tensor if row is None else tensor[row]


@pytest.mark.parametrize("family", ["vit", "gpt2", "bart"])
def test_peft_ia3_gives_the_builtin_ia3_counts_and_first_step(backbones: dict[str, Any], family: str) -> None:
    text, hparams = IA3[family]
    ours, theirs = pair(backbones, family, "ia3", text, **hparams)
    assert ours.method_trainable == theirs.method_trainable
    with torch.no_grad():  # all ones on both sides: the frozen network
        assert torch.allclose(loss_of(ours, family), loss_of(theirs, family), atol=1e-6)
    vectors = ia3_vectors(ours, theirs)
    assert sum(pick(mine, row).numel() for mine, row, _, _ in vectors) == ours.method_trainable
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():  # off the init, the same values on both sides
        for mine, row, vector, rows in vectors:
            values = 1 + 0.3 * torch.randn(vector.view(-1)[rows].shape, generator=generator)
            vector.view(-1)[rows] = values
            pick(mine, row).copy_(values)
    loss_ours, loss_theirs = loss_of(ours, family), loss_of(theirs, family)
    assert abs(loss_ours.item() - loss_theirs.item()) < 1e-5
    loss_ours.backward()
    loss_theirs.backward()
    for mine, row, vector, rows in vectors:
        torch.testing.assert_close(vector.grad.view(-1)[rows], pick(mine.grad, row), atol=1e-6, rtol=1e-4)
    adamw_step(ours, theirs)
    for mine, row, vector, rows in vectors:  # the updated values
        torch.testing.assert_close(vector.view(-1)[rows], pick(mine, row), atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        assert abs(loss_of(ours, family).item() - loss_of(theirs, family).item()) < 1e-5


# ---------------------------------------------------------------- every allowed config, modes, state


ALLOWED = {  # config -> arguments (target names per family: {attention}, {mlp}, {norm})
    "LoraConfig": "r=4,target_modules=[{attention}]",
    "IA3Config": "target_modules=[{attention},{mlp}],feedforward_modules=[{mlp}]",
    "LoHaConfig": "r=4,target_modules=[{attention}]",
    "LoKrConfig": "r=4,target_modules=[{attention}]",
    "OFTConfig": "oft_block_size=16,target_modules=[{attention}]",
    "HRAConfig": "r=4,target_modules=[{attention}]",
    "FourierFTConfig": "n_frequency=16,target_modules=[{attention}]",
    "LNTuningConfig": "target_modules=[{norm}]",
}
NAMES = {"vit": {"attention": "qkv", "mlp": "fc2", "norm": "norm1"},
         "gpt2": {"attention": "c_attn", "mlp": "mlp.c_proj", "norm": "ln_1"},
         "bart": {"attention": "q_proj", "mlp": "fc2", "norm": "self_attn_layer_norm"}}


@pytest.mark.parametrize("family", ["vit", "gpt2", "bart"])
def test_every_allowed_config_trains_or_is_refused_with_the_reason(backbones: dict[str, Any], family: str) -> None:
    assert set(ALLOWED) == set(PEFT_CONFIGS)
    for config, arguments in ALLOWED.items():
        text = f"peft:{config}({arguments.format(**NAMES[family])})"
        try:
            registry.get_method(text).check_task(SimpleNamespace(backbone=MINI[family]))  # what a plan checks
            m = model(backbones, family, text)
        except BenchError as exc:  # some tuners take nn.Linear only, not GPT-2's Conv1D: said when a run is planned
            assert family == "gpt2" and config not in ("LoraConfig", "IA3Config"), exc
            assert "Conv1D" in str(exc) and "Module names on this backbone" in str(exc)
            continue
        head = sum(p.numel() for p in m.head.parameters()) if m.head is not None else 0
        assert 0 < m.method_trainable == sum(p.numel() for p in m.parameters() if p.requires_grad) - head
        loss_of(m, family).backward()
        grads = [p.grad for p in m.method_module.parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), (config, family)


def test_peft_dropout_follows_the_method_mode_not_the_frozen_backbone(backbones: dict[str, Any]) -> None:
    m = model(backbones, "vit", "peft:LoraConfig(r=4,lora_dropout=0.5,target_modules=[qkv])")
    with torch.no_grad():
        for layer in range(m.backbone.num_layers):
            m.backbone.vit.blocks[layer].attn.qkv.lora_B["default"].weight.normal_()
    images = batch("vit")["images"]
    m.train()
    assert not m.backbone.training  # a PEFT method's backbone stays in eval mode
    with torch.no_grad():
        assert not torch.allclose(m(images), m(images))  # peft's dropout acts while the method trains
        dropout = m.backbone.vit.blocks[0].attn.qkv.lora_dropout["default"]
        assert dropout.training and not m.backbone.vit.blocks[0].attn.qkv.base_layer.training
        m.eval()
        assert torch.equal(m(images), m(images)) and not dropout.training


def test_trained_state_reloads_and_stored_names_resolve(backbones: dict[str, Any]) -> None:
    text = "peft:LoraConfig(r=4,target_modules=[qkv])"
    m = model(backbones, "vit", text)
    state = m.trainable_state(copy=True)
    assert any("lora_A" in name for name in state) and not any(n.startswith("method_module.") for n in state)
    with torch.no_grad():
        for tensor in state.values():
            tensor.add_(1.0)
    fresh = model(backbones, "vit", text)
    fresh.load_state_dict(state, strict=False)
    assert all(torch.equal(fresh.state_dict()[name], tensor) for name, tensor in state.items())
    stored = registry.get_method(resolve(text).name)  # what a leaderboard or an analysis finds in a record
    again = model(backbones, "vit", stored.name, config=resolve(text).text)
    assert again.method_trainable == m.method_trainable
    with pytest.raises(BenchError, match="fixed by its name"):
        stored.parse_hparams({"config": "LoraConfig(r=2,target_modules=[qkv])"})


# ---------------------------------------------------------------- the CLI and the leaderboard


def test_list_methods_params_counts_a_given_peft_method(tiny_tasks_dir: Path, capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    assert main(["list", "methods", "--params", "--task", "tiny/colors", "--tasks-dir", str(tiny_tasks_dir)]) == 0
    out = capsys.readouterr().out
    assert "--method 'peft:LoraConfig(" in out and "qkv" in out.split("module names on this backbone:")[1]
    text = "peft:LoraConfig(r=4, target_modules=[qkv])"
    assert main(["list", "methods", "--params", "--task", "tiny/colors", "--tasks-dir", str(tiny_tasks_dir),
                 "--method", f"lora,{text}"]) == 0
    out = capsys.readouterr().out
    name = resolve(text).name
    row = next(line for line in out.splitlines() if line.startswith(name + " "))
    lora = next(line for line in out.splitlines() if line.startswith("lora "))
    assert row.split()[1] == f"{2 * (4 * 32 + 3 * 32 * 4):,}"  # A (r x hidden) + B (3·hidden x r), 2 layers
    assert lora.split()[1] == f"{2 * 2 * (8 * 32 + 32 * 8):,}"  # A, B for the query and for the value
    assert f"{name} = peft:LoraConfig(r=4,target_modules=[qkv])" in out


PEFT_LORA = "peft:LoraConfig(r=4,target_modules=[qkv])"


def test_leaderboard_holds_a_peft_row_next_to_the_builtins(tmp_path: Path, tiny_data: Path) -> None:
    tasks = tmp_path / "tasks"
    (tasks / "tiny").mkdir(parents=True)
    spec = TINY_TASK.format(root=tiny_data) + textwrap.indent(textwrap.dedent(f"""\
        lora: {{grid: {{base_lr: [0.01], weight_decay: [0.0]}}}}
        "{PEFT_LORA}": {{grid: {{base_lr: [0.01], weight_decay: [0.0]}}}}
    """), "    ")
    (tasks / "tiny" / "colors.yaml").write_text(spec)
    results = tmp_path / "runs"
    request = api.RunRequest(task="tiny/colors", methods=("lora", PEFT_LORA), tasks_dirs=(str(tasks),),
                             results=str(results), stages=("final",))
    outcome = api.run(request)
    name = resolve(PEFT_LORA).name
    (_, builtin), (_, theirs) = outcome.results
    assert builtin.method == "lora" and len(builtin.final) == 2
    assert theirs.method == name and len(theirs.final) == 2  # the task spec's grid (one point) keyed by the text
    record = theirs.final[0]
    assert record["run"]["hparams"] == {"config": "LoraConfig(r=4,target_modules=[qkv])"}
    assert record["run"]["optim"]["base_lr"] == 0.01 and record["selection"]["rule"].startswith("fixed by the task")
    assert record["identity"]["method_code"].endswith(f"+peft-{peft.__version__}")
    board = api.leaderboard("tiny/colors", results=results, tasks_dirs=[tasks])
    rows = {row.method: row for row in board.rows if row.block == "runs"}
    assert set(rows) == {"lora", name} and all(r.entries[0].value is not None for r in rows.values())
    only = api.leaderboard("tiny/colors", results=results, tasks_dirs=[tasks], methods=[PEFT_LORA])
    assert [row.method for row in only.rows if row.block == "runs"] == [name]
