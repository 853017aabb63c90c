"""GPT-2 and BART behind the backbone interface: prefix parity with the past_key_values route, the
reference parameter counts of the language Deep-share (reference §1.2), and every method file attaching."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from bench import registry
from bench.backbones.bart import BartBackbone
from bench.backbones.gpt2 import GPT2Backbone
from bench.errors import BenchError
from bench.spec import LanguageBackboneSpec

transformers = pytest.importorskip("transformers")


def tiny_gpt2(shift: bool = True) -> GPT2Backbone:
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=50, n_positions=64,
                                     bos_token_id=1, eos_token_id=1)
    return GPT2Backbone(transformers.GPT2LMHeadModel(config).eval(), None,
                        LanguageBackboneSpec(kind="gpt2", model="tiny", shift_positions=shift))


def tiny_bart() -> BartBackbone:
    config = transformers.BartConfig(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                                     decoder_attention_heads=4, vocab_size=60, max_position_embeddings=64,
                                     encoder_ffn_dim=64, decoder_ffn_dim=64)
    return BartBackbone(transformers.BartForConditionalGeneration(config).eval(), None,
                        LanguageBackboneSpec(kind="bart", model="tiny"))


class TableProvider:
    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.keys, self.values = keys, values

    def __call__(self, layer: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.keys[layer], self.values[layer]

    def positions(self, layer: int) -> int:
        return self.keys.shape[1]


@pytest.mark.parametrize("shift", [True, False])
def test_gpt2_prefix_equals_past_key_values(shift: bool) -> None:
    torch.manual_seed(0)
    backbone = tiny_gpt2(shift)
    reference = transformers.GPT2LMHeadModel(backbone.model.config).eval()
    reference.load_state_dict(backbone.model.state_dict(), strict=False)
    reference.transformer.wpe.weight.data.copy_(backbone.model.transformer.wpe.table.weight if shift
                                                else backbone.model.transformer.wpe.weight)
    positions = 3
    keys, values = torch.randn(2, positions, 4, 8), torch.randn(2, positions, 4, 8)
    backbone.set_prefix_provider(TableProvider(keys, values))
    ids = torch.randint(0, 50, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0  # right padding in the second sequence
    ours = backbone(input_ids=ids, attention_mask=mask).logits
    cache = transformers.DynamicCache()
    for layer in range(2):
        cache.update(keys[layer].transpose(0, 1).expand(2, -1, -1, -1).contiguous(),
                     values[layer].transpose(0, 1).expand(2, -1, -1, -1).contiguous(), layer)
    full_mask = torch.cat([torch.ones(2, positions, dtype=torch.long), mask], 1)
    position_ids = torch.arange(7).unsqueeze(0) + (positions if shift else 0)
    theirs = reference(input_ids=ids, attention_mask=full_mask, past_key_values=cache,
                       position_ids=position_ids).logits
    torch.testing.assert_close(ours[0], theirs[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours[1, :5], theirs[1, :5], atol=1e-5, rtol=1e-5)


def test_empty_prefix_is_the_frozen_model() -> None:
    torch.manual_seed(0)
    for backbone in (tiny_gpt2(), tiny_bart()):
        ids = torch.randint(3, 50, (2, 6))
        inputs = {"input_ids": ids} if isinstance(backbone, GPT2Backbone) else {"input_ids": ids,
                                                                                  "decoder_input_ids": ids[:, :3]}
        plain = backbone(**inputs).logits
        backbone.set_prefix_provider(lambda layer, batch: None, positions=0)
        torch.testing.assert_close(backbone(**inputs).logits, plain)


def test_bart_has_three_prefix_stacks_and_each_matters() -> None:
    torch.manual_seed(0)
    backbone = tiny_bart()
    assert backbone.num_layers == 6 and backbone.stacks() == [range(0, 2), range(2, 4), range(4, 6)]
    assert backbone.num_blocks == 4
    ids = torch.randint(3, 60, (2, 6))
    plain = backbone(input_ids=ids, decoder_input_ids=ids[:, :3]).logits
    for stack in backbone.stacks():
        keys, values = torch.zeros(6, 2, 4, 8), torch.zeros(6, 2, 4, 8)
        keys[stack.start], values[stack.start] = torch.randn(2, 4, 8), torch.randn(2, 4, 8)
        backbone.prefix_provider = None
        backbone.set_prefix_provider(TableProvider(keys, values))
        changed = backbone(input_ids=ids, decoder_input_ids=ids[:, :3]).logits
        assert (changed - plain).abs().max() > 1e-4, stack
    backbone.prefix_provider = None


@pytest.mark.parametrize(("kind", "expected_trained", "expected_stored"), [
    ("gpt2", 25_744_896, 245_760),       # GPT-2 medium, preseqlen 5, mid 512 (reference §1.2)
    ("bart", 40_011_264, 14_745_600),    # BART-large, preseqlen 200, mid 512, three sets
])
def test_language_deep_share_parameter_counts(kind: str, expected_trained: int, expected_stored: int) -> None:
    with torch.device("meta"):
        if kind == "gpt2":
            config = transformers.GPT2Config(n_embd=1024, n_layer=24, n_head=16)
            backbone = GPT2Backbone(transformers.GPT2LMHeadModel(config), None,
                                    LanguageBackboneSpec(kind="gpt2", model="gpt2-medium"))
            num_tokens = 10
        else:
            config = transformers.BartConfig(d_model=1024, encoder_layers=12, decoder_layers=12,
                                             encoder_attention_heads=16, decoder_attention_heads=16)
            backbone = BartBackbone(transformers.BartForConditionalGeneration(config), None,
                                    LanguageBackboneSpec(kind="bart", model="facebook/bart-large"))
            num_tokens = 400
        cls = registry.get_method("deep_share")
        method = cls(cls.parse_hparams({"num_tokens": num_tokens, "mlp_hidden": 512, "dropout": 0.0}))
        module = method.attach(backbone)
    assert sum(p.numel() for p in module.parameters()) == expected_trained
    assert method.stored_parameter_count(module) == expected_stored
    no_share = registry.get_method("no_share")
    with torch.device("meta"):
        backbone.prefix_provider = None
        table = no_share(no_share.parse_hparams({"num_tokens": num_tokens})).attach(backbone)
    assert sum(p.numel() for p in table.parameters()) == expected_stored


def test_language_deep_share_layout_is_k0_v0_k1_v1() -> None:
    torch.manual_seed(0)
    backbone = tiny_gpt2()
    cls = registry.get_method("deep_share")
    module = cls(cls.parse_hparams({"num_tokens": 4, "mlp_hidden": 16, "dropout": 0.0})).attach(backbone)
    module.eval()
    flat = module.mlps[0](module.tables[0])  # (E, layers·2·hidden)
    for layer in range(2):
        keys, values = module(layer, 1)
        torch.testing.assert_close(keys.flatten(-2), flat[:, (2 * layer) * 32:(2 * layer + 1) * 32])
        torch.testing.assert_close(values.flatten(-2), flat[:, (2 * layer + 1) * 32:(2 * layer + 2) * 32])


@pytest.mark.parametrize("name", ["no_share", "simple_share", "deep_share", "lora", "adapter", "bitfit", "full_ft"])
@pytest.mark.parametrize("family", ["gpt2", "bart"])
def test_every_text_method_trains_on_both_families(name: str, family: str) -> None:
    from bench.train.model import PeftModel as LanguagePeftModel

    torch.manual_seed(0)
    backbone = tiny_gpt2() if family == "gpt2" else tiny_bart()
    cls = registry.get_method(name)
    model = LanguagePeftModel(backbone, cls()).train()
    ids = torch.randint(3, 50, (2, 6))
    inputs = {"input_ids": ids} if family == "gpt2" else {"input_ids": ids, "decoder_input_ids": ids[:, :3]}
    logits = model.backbone(**inputs).logits
    logits.logsumexp(-1).sum().backward()
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained and model.method_trainable > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)


def test_vpt_is_refused_on_text() -> None:
    cls = registry.get_method("vpt_deep")
    with pytest.raises(BenchError, match="VPT is a vision method"):
        cls().attach(tiny_gpt2())


def test_deep_copy_keeps_hooks_on_the_copy() -> None:
    torch.manual_seed(0)
    original = tiny_gpt2()
    clone = copy.deepcopy(original)
    lora = registry.get_method("lora")
    lora().attach(clone)
    assert original.qkv_delta is None and clone.qkv_delta is not None
    hook = next(iter(clone.model.transformer.h[0].attn.c_attn._forward_hooks.values()))
    assert hook.backbone is clone


def test_deep_share_matches_hf_peft_prefix_tuning() -> None:
    """Same GPT-2, batch and prefix: the first training step's loss and the trainable count equal peft's."""
    pytest.importorskip("peft")
    from bench.perf.peft import compare

    result = compare(batch=2, length=12, steps=1, warmup=0, positions=5, mlp_hidden=32,
                     config_kwargs={"n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 100, "n_positions": 64})
    assert result.trainable_ours == result.trainable_peft == 10_848  # HF peft counts the same
    assert result.ours_loss == pytest.approx(result.peft_loss, abs=1e-6)


def test_no_share_init_text_is_the_models_own_past() -> None:
    """Li & Liang's word init: the prefix is GPT-2's cache for the text, so the model continues the text."""

    class FixedTokenizer:
        def __call__(self, text: str, add_special_tokens: bool = False, return_tensors: str = "pt") -> dict:
            return {"input_ids": torch.tensor([[5, 7, 9]])}

    torch.manual_seed(0)
    backbone = tiny_gpt2(shift=True)
    object.__setattr__(backbone, "tokenizer", FixedTokenizer())
    plain = backbone(input_ids=torch.tensor([[5, 7, 9, 11, 13]])).logits
    cls = registry.get_method("no_share")
    module = cls(cls.parse_hparams({"init_text": " summarize", "dropout": 0.0})).attach(backbone)
    assert module.positions(0) == 3  # the text's token count, whatever num_tokens says
    with_prefix = backbone(input_ids=torch.tensor([[11, 13]])).logits
    torch.testing.assert_close(with_prefix[0], plain[0, 3:], atol=1e-5, rtol=1e-5)


def test_init_text_is_refused_on_vision() -> None:
    from bench.backbones.vit import build_vit
    from bench.spec import BackboneSpec

    backbone = build_vit(BackboneSpec(model="vit_base_patch16_224", pretrained=False,
                                      model_kwargs={"img_size": 16, "patch_size": 8, "embed_dim": 32, "depth": 1,
                                                    "num_heads": 2}))
    cls = registry.get_method("no_share")
    with pytest.raises(BenchError, match="init_text"):
        cls(cls.parse_hparams({"init_text": "summarize"})).attach(backbone)


# -- building offline (bench/backbones/files.py) --------------------------------------------------------------------

GPT2_MEDIUM_REVISION = "46d27d4bef13a36eebe5b89bbb1bd2d072a379d0"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def empty_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.mark.parametrize(("kind", "model", "revision", "parameters", "layers"), [
    # GPT-2 medium with the [PAD] row its tokenizer would add (Li & Liang); BART-large as published
    ("gpt2", "gpt2-medium", GPT2_MEDIUM_REVISION, 354_823_168 + 1024, 24),
    ("bart", "facebook/bart-large", "cb48c1365bd826bd521f650dc2e0940aee54720c", 406_291_456, 36),
])
def test_random_weight_language_backbones_build_from_the_shipped_config_without_the_hub(
        kind: str, model: str, revision: str, parameters: int, layers: int, no_network: None,
        empty_hf_cache: Path) -> None:
    from bench.backbones import build_backbone
    from bench.backbones.files import MissingTokenizer

    with torch.device("meta"):  # the real shapes, no memory
        spec = LanguageBackboneSpec(kind=kind, model=model, revision=revision, pretrained=False)
        backbone: Any = build_backbone(spec)
    assert backbone.backbone_parameter_count() == parameters
    assert (backbone.num_layers, backbone.hidden_size, backbone.num_heads) == (layers, 1024, 16)
    assert isinstance(backbone.tokenizer, MissingTokenizer)
    with pytest.raises(BenchError, match=rf"tokenizer of '{model}'.*not on this machine.*hf download {model}"):
        backbone.tokenizer("some text")


def test_a_missing_tokenizer_survives_a_deep_copy_and_fails_on_use() -> None:
    from bench.backbones.files import MissingTokenizer

    stand_in = copy.deepcopy(MissingTokenizer(LanguageBackboneSpec(kind="gpt2", model="gpt2-medium")))
    assert not stand_in and not hasattr(stand_in, "__deepcopy__")
    for use in (lambda: stand_in.pad_token_id, lambda: len(stand_in), lambda: stand_in.decode([1])):
        with pytest.raises(BenchError, match="tokenizer of 'gpt2-medium'"):
            use()


def test_a_folder_with_only_a_config_builds_random_weights(tmp_path: Path, no_network: None) -> None:
    from bench.backbones import build_backbone

    transformers.BartConfig(d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
                            decoder_attention_heads=4, vocab_size=60, encoder_ffn_dim=64,
                            decoder_ffn_dim=64).save_pretrained(tmp_path)
    backbone: Any = build_backbone(LanguageBackboneSpec(kind="bart", model=str(tmp_path), pretrained=False))
    assert backbone.num_layers == 3 and backbone.model.config.vocab_size == 60  # BART has a pad token: no new row


def test_an_unshipped_config_offline_is_one_paragraph(no_network: None, empty_hf_cache: Path) -> None:
    from bench.backbones import build_backbone

    with pytest.raises(BenchError) as error:
        build_backbone(LanguageBackboneSpec(kind="gpt2", model="gpt2-large", pretrained=False))
    assert error.value.field == "backbone.model" and "gpt2-medium" in str(error.value)
    assert "hf download gpt2-large config.json" in str(error.value) and "\n" not in str(error.value)


def test_pretrained_weights_absent_offline_say_what_to_download(monkeypatch: pytest.MonkeyPatch,
                                                                empty_hf_cache: Path) -> None:
    from bench import hub
    from bench.backbones import build_backbone

    monkeypatch.setattr(hub, "prefer_offline", lambda: "HF_HUB_OFFLINE is set")
    spec = LanguageBackboneSpec(kind="gpt2", model="gpt2-medium", revision=GPT2_MEDIUM_REVISION)
    with pytest.raises(BenchError) as error:
        build_backbone(spec)
    text = str(error.value)
    assert error.value.exit_code == 2 and error.value.field == "backbone.model" and "\n" not in text
    assert "not on this machine and the Hugging Face hub cannot be reached (HF_HUB_OFFLINE is set)" in text
    assert f"hf download gpt2-medium --revision {GPT2_MEDIUM_REVISION} --local-dir DIR" in text
    assert "backbone.model: DIR" in text and str(empty_hf_cache) in text


def _hub_cache_entry(cache: Path, repo: str, revision: str) -> tuple[Path, Any]:
    """A Hugging Face cache entry as `hf download` leaves it: a tiny GPT-2 and the mini tokenizer."""
    from bench.backbones.files import ASSETS_DIR

    snapshot = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (cache / f"models--{repo.replace('/', '--')}" / "refs").mkdir()
    (cache / f"models--{repo.replace('/', '--')}" / "refs" / "main").write_text(revision)
    torch.manual_seed(1)
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=2000, n_positions=64)
    model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(snapshot)
    transformers.AutoTokenizer.from_pretrained(ASSETS_DIR / "mini_gpt2").save_pretrained(snapshot)
    return snapshot, model


def test_pretrained_weights_load_from_the_hugging_face_cache_offline(monkeypatch: pytest.MonkeyPatch,
                                                                      empty_hf_cache: Path, no_network: None) -> None:
    from bench import hub
    from bench.backbones import build_backbone

    monkeypatch.setattr(hub, "prefer_offline", lambda: "HF_HUB_OFFLINE is set")
    _, saved = _hub_cache_entry(empty_hf_cache, "gpt2-medium", GPT2_MEDIUM_REVISION)
    # shift_positions off keeps GPT-2's own parameter names
    backbone: Any = build_backbone(LanguageBackboneSpec(kind="gpt2", model="gpt2-medium",
                                                        revision=GPT2_MEDIUM_REVISION, shift_positions=False))
    assert backbone.tokenizer.pad_token == "[PAD]"  # the mini tokenizer has one: no new row
    loaded = backbone.model.state_dict()
    for name, tensor in saved.state_dict().items():
        torch.testing.assert_close(loaded[name], tensor, msg=name)


def test_a_damaged_weight_file_in_the_cache_is_named(monkeypatch: pytest.MonkeyPatch, empty_hf_cache: Path,
                                                    no_network: None) -> None:
    from bench import hub
    from bench.backbones import build_backbone

    monkeypatch.setattr(hub, "prefer_offline", lambda: "HF_HUB_OFFLINE is set")
    snapshot, _ = _hub_cache_entry(empty_hf_cache, "gpt2-medium", GPT2_MEDIUM_REVISION)
    weights = snapshot / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(BenchError, match="could not read the files of 'gpt2-medium'.*download it again"):
        build_backbone(LanguageBackboneSpec(kind="gpt2", model="gpt2-medium", revision=GPT2_MEDIUM_REVISION))


# -- decoding with prefixes ----------------------------------------------------------------------------------------

SUMMARY_SOURCES = ["the city council met on monday to discuss the new bridge over the river",
                   "a local team won the cup after a long season",
                   "scientists found a new species of frog in the forest"]
# Recorded on mini BART with the implementation that joined the cross-attention prefix at every decoding step
# (before the prefix was kept in the cross-attention cache): the same token ids must come out.
RECORDED_BEAMS = {
    "no_share": {
        "current": [[2, 0, 88, 263, 747, 646, 288, 315, 394, 2, 1, 1, 1],
                    [2, 0, 69, 569, 1740, 1067, 268, 702, 1529, 419, 262, 584, 2],
                    [2, 0, 87, 71, 77, 429, 820, 313, 268, 568, 8, 84, 2]],
        "legacy": [[0, 88, 263, 747, 646, 288, 315, 394], [0, 69, 569, 1740, 1067, 268, 702, 1529, 419, 262, 584],
                   [0, 87, 71, 77, 429, 820, 313, 268, 568, 8, 84]]},
    "deep_share": {
        "current": [[2, 0, 88, 263, 828, 646, 288, 315, 394, 288, 603, 438, 2],
                    [2, 0, 69, 569, 857, 1067, 268, 1633, 1529, 419, 262, 584, 2],
                    [2, 0, 87, 71, 77, 1166, 1629, 1065, 262, 568, 8, 84, 2]],
        "legacy": [[0, 88, 263, 828, 646, 288, 315, 394, 288, 603, 438],
                   [0, 69, 569, 857, 1067, 268, 1633, 1529, 419, 262, 584],
                   [0, 87, 71, 77, 1166, 1629, 1065, 262, 568, 8, 84]]},
}
BEAM_HPARAMS = {"no_share": {"num_tokens": 6, "dropout": 0.0},
                "deep_share": {"num_tokens": 6, "mlp_hidden": 16, "dropout": 0.0}}


def mini_bart_with(method: str) -> tuple[Any, Any]:
    from bench.backbones import build_backbone
    from bench.train.model import PeftModel as LanguagePeftModel

    torch.manual_seed(0)
    backbone = build_backbone(LanguageBackboneSpec(kind="bart", model="bench:mini_bart"))
    cls = registry.get_method(method)
    return backbone, LanguagePeftModel(backbone, cls(cls.parse_hparams(BEAM_HPARAMS[method]))).eval()


@pytest.mark.parametrize("method", ["no_share", "deep_share"])
def test_beam_search_with_a_prefix_gives_the_recorded_outputs(method: str) -> None:
    from bench.generation import legacy_beam_search, legacy_generation_defaults

    backbone, _ = mini_bart_with(method)
    tok, hf = backbone.tokenizer, backbone.model
    enc = tok(SUMMARY_SOURCES, return_tensors="pt", padding=True)
    with torch.no_grad():
        current = hf.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], num_beams=4,
                              do_sample=False, max_new_tokens=12, min_new_tokens=3, length_penalty=0.8,
                              early_stopping=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        defaults = legacy_generation_defaults(hf)
        legacy = legacy_beam_search(hf, enc["input_ids"], enc["attention_mask"], num_beams=4, max_length=13,
                                    min_length=4, length_penalty=0.8, early_stopping=False,
                                    eos_token_id=defaults["eos_token_id"], pad_token_id=defaults["pad_token_id"],
                                    decoder_start_token_id=defaults["decoder_start_token_id"],
                                    forced_eos_token_id=defaults["forced_eos_token_id"])
    assert current.tolist() == RECORDED_BEAMS[method]["current"]
    assert legacy == RECORDED_BEAMS[method]["legacy"]


def test_the_cross_attention_prefix_is_joined_once_per_generate_call() -> None:
    backbone, _ = mini_bart_with("no_share")
    calls: dict[int, int] = {}
    own = backbone.layer_prefix

    def counting(layer: int, batch: int) -> object:
        calls[layer] = calls.get(layer, 0) + 1
        return own(layer, batch)

    object.__setattr__(backbone, "layer_prefix", counting)
    enc = backbone.tokenizer(SUMMARY_SOURCES[:2], return_tensors="pt", padding=True)
    steps = 8
    for _ in range(2):  # a second call starts from a fresh cache: once more, not never
        with torch.no_grad():
            out = backbone.model.generate(**enc, num_beams=3, do_sample=False, max_new_tokens=steps,
                                          min_new_tokens=steps)
    assert out.shape[1] == steps + 1
    encoder, decoder_self, cross = backbone.stacks()
    assert all(calls[layer] == 2 for layer in encoder)
    assert all(calls[layer] == 2 * steps for layer in decoder_self)  # self-attention keys grow at every step
    assert all(calls[layer] == 2 for layer in cross)
    assert all(module.__dict__["_bench_slot"].kept is None for module in backbone.attention_modules())
