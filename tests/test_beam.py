"""transformers 3.2's beam search (bench.generation.beam): a hand-computed case where its length normalisation and
today's pick different hypotheses, and agreement with transformers 5 `generate` where the two definitions coincide
(greedy; length_penalty 0; one-token GPT-2 prompts; BART, whose two lengths are always equal)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from bench.generation import LegacyBeamHypotheses, legacy_beam_search, legacy_generation_defaults

EOS, FILL, A, B, C = 0, 1, 2, 3, 4

# Next-token probabilities of a fake decoder-only model, by the tokens generated so far (the prompt is ignored).
# Every row sums to 1, so log_softmax(log p) = log p.
TREE: dict[tuple[int, ...], dict[int, float]] = {
    (): {A: 0.5, B: 0.4, C: 0.06, EOS: 0.04},
    (A,): {EOS: math.exp(-1.0) / 0.5, C: 0.2, A: 0.0343, B: 1 - math.exp(-1.0) / 0.5 - 0.2343},
    (B,): {C: 0.8, EOS: 0.1, A: 0.06, B: 0.04},
    (B, C): {EOS: math.exp(-1.4) / 0.32, A: 0.12, B: 0.08, C: 1 - math.exp(-1.4) / 0.32 - 0.2},
    (A, C): {A: 0.4, B: 0.3, C: 0.2, EOS: 0.1},
}
DEFAULT = {EOS: 0.4, A: 0.3, B: 0.2, C: 0.1}


class TreeModel(torch.nn.Module):
    """Returns the log-probabilities of TREE for the tokens after the prompt; keeps no cache."""

    config = SimpleNamespace(is_encoder_decoder=False)

    def __init__(self, prompt_length: int) -> None:
        super().__init__()
        self.prompt_length = prompt_length

    def forward(self, input_ids: torch.Tensor, **_: Any) -> SimpleNamespace:
        rows = []
        for row in input_ids.tolist():
            probs = TREE.get(tuple(row[self.prompt_length:]), DEFAULT)
            rows.append([math.log(probs.get(token, 1e-30)) for token in range(5)])
        return SimpleNamespace(logits=torch.tensor(rows, dtype=torch.float64)[:, None, :], past_key_values=None)


def decode_tree(prompt_length: int, **settings: Any) -> list[int]:
    prompt = torch.full((1, prompt_length), FILL)
    options = {"num_beams": 2, "max_length": prompt_length + 10, "length_penalty": 1.0, "early_stopping": False,
               "eos_token_id": EOS, "pad_token_id": FILL, **settings}
    return legacy_beam_search(TreeModel(prompt_length), prompt, **options)[0]


def test_tree_probabilities_are_distributions() -> None:
    for probs in [*TREE.values(), DEFAULT]:
        assert sum(probs.values()) == pytest.approx(1.0) and min(probs.values()) > 0


def test_hand_computed_case_legacy_and_current_normalisation_disagree() -> None:
    # The search finishes two hypotheses (2 beams): A = [a] <eos> with log-prob sum ln 0.5 + ln(e^-1 / 0.5) = -1.0
    # at step 2, and B = [b, c] <eos> with ln 0.4 + ln 0.8 + ln(e^-1.4 / 0.32) = -1.4 at step 3 (the <eos> after
    # [b] or [a, c] never ranks among the top 2 candidates). With a 3-token prompt, transformers 3.2 divides by the
    # whole hypothesis before <eos>: A -1.0 / 4 = -0.25 beats B -1.4 / 5 = -0.28. Today's generate divides by the
    # generated length with <eos>: A -1.0 / 2 = -0.5 loses to B -1.4 / 3 = -0.467.
    assert -1.0 / 4 > -1.4 / 5 and -1.0 / 2 < -1.4 / 3
    assert decode_tree(prompt_length=3) == [A]
    # With a 1-token prompt the two definitions coincide (A -1.0 / 2, B -1.4 / 3): B wins in both.
    assert decode_tree(prompt_length=1) == [B, C]


def test_min_length_counts_the_prompt() -> None:
    # <eos> is banned while prompt + generated < min_length: with a 3-token prompt, min_length 4 still lets A end
    # after one token; min_length 5 bans that <eos>, and B (-0.28) beats the only other finished hypothesis,
    # [a, c, a] <eos> at -4.135 / 6.
    assert decode_tree(prompt_length=3, min_length=4) == [A]
    assert decode_tree(prompt_length=3, min_length=5) == [B, C]


def test_n_best_list_keeps_the_best_and_ranks_by_normalised_score() -> None:
    hyps = LegacyBeamHypotheses(num_beams=2, length_penalty=1.0, early_stopping=False)
    hyps.add([1, 2, 3, 4], -2.0)  # -0.5
    hyps.add([1, 2], -0.5)  # -0.25
    assert not hyps.is_done(best_sum_logprobs=-1.0, cur_len=4)  # -0.25 could still beat the worst, -0.5
    hyps.add([1, 2, 3], -0.75)  # -0.25 beats -0.5, which leaves
    assert sorted(score for score, _ in hyps.beams) == [-0.25, -0.25] and hyps.worst_score == -0.25
    assert hyps.is_done(best_sum_logprobs=-1.25, cur_len=5)  # -0.25 >= -0.25
    assert not hyps.is_done(best_sum_logprobs=-1.0, cur_len=5)  # -0.2 could beat it
    assert hyps.best() == [1, 2, 3]  # equal scores: the one added last
    assert LegacyBeamHypotheses(2, 1.0, early_stopping=True).is_done(0.0, 1) is False
    full = LegacyBeamHypotheses(1, 1.0, early_stopping=True)
    full.add([1], -5.0)
    assert full.is_done(0.0, 2)  # early stopping: full is enough


# ---------------------------------------------------------------- agreement with transformers 5


@pytest.fixture(scope="module")
def gpt2() -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=30, n_positions=80, n_embd=32, n_layer=2, n_head=2, initializer_range=0.3,
                        bos_token_id=0, eos_token_id=0, pad_token_id=1)
    return GPT2LMHeadModel(config).eval()


def _left_padded(prompts: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


def _until(rows: list[list[int]], eos: int, pad: int) -> list[list[int]]:
    return [[t for t in (row[:row.index(eos)] if eos in row else row) if t != pad] for row in rows]


@pytest.mark.parametrize("eos", [28])
@pytest.mark.parametrize("beams, length_penalty", [(1, 1.0), (4, 0.0)])
def test_gpt2_agrees_with_generate_when_length_does_not_matter(gpt2: Any, eos: int, beams: int,
                                                               length_penalty: float) -> None:
    generator = torch.Generator().manual_seed(1)
    prompts = [torch.randint(2, 30, (n,), generator=generator).tolist() for n in (5, 2, 4, 7, 1, 3)]
    ids, mask = _left_padded(prompts, pad=1)
    current = gpt2.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=beams,
                            max_new_tokens=15, length_penalty=length_penalty, early_stopping=True, pad_token_id=1,
                            eos_token_id=eos)
    legacy = legacy_beam_search(gpt2, ids, mask, num_beams=beams, max_length=[len(p) + 15 for p in prompts],
                                length_penalty=length_penalty, early_stopping=True, eos_token_id=eos, pad_token_id=1)
    expected = _until(current[:, ids.shape[1]:].tolist(), eos, pad=1)
    assert legacy == expected
    assert any(len(row) < 15 for row in legacy)  # some hypotheses ended with <eos>


@pytest.mark.parametrize("eos", [24, 3])
def test_gpt2_one_token_prompts_agree_with_generate(gpt2: Any, eos: int) -> None:
    # 3.2 divides by 1 + generated tokens (prompt and generated, no <eos>), today's generate by generated tokens
    # with <eos>: the same number when the prompt is one token.
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 30, (8, 1), generator=generator)
    current = gpt2.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=4,
                            max_new_tokens=15, length_penalty=1.0, early_stopping=True, pad_token_id=1,
                            eos_token_id=eos)
    legacy = legacy_beam_search(gpt2, ids, None, num_beams=4, max_length=16, length_penalty=1.0,
                                early_stopping=True, eos_token_id=eos, pad_token_id=1)
    assert legacy == _until(current[:, 1:].tolist(), eos, pad=1)


def test_gpt2_longer_prompts_change_the_choice(gpt2: Any) -> None:
    # The point of the legacy scoring: with a length penalty and prompts longer than one token it ranks finished
    # hypotheses differently from today's generate (here on some of the six inputs).
    generator = torch.Generator().manual_seed(1)
    prompts = [torch.randint(2, 30, (n,), generator=generator).tolist() for n in (5, 2, 4, 7, 1, 3)]
    ids, mask = _left_padded(prompts, pad=1)
    current = gpt2.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=4, max_new_tokens=15,
                            length_penalty=1.0, early_stopping=True, pad_token_id=1, eos_token_id=28)
    legacy = legacy_beam_search(gpt2, ids, mask, num_beams=4, max_length=[len(p) + 15 for p in prompts],
                                length_penalty=1.0, early_stopping=True, eos_token_id=28, pad_token_id=1)
    modern = _until(current[:, ids.shape[1]:].tolist(), 28, pad=1)
    assert legacy[4] == modern[4]  # the one-token prompt
    assert any(a != b for a, b in zip(legacy, modern, strict=True))


@pytest.fixture(scope="module")
def bart() -> Any:
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(0)
    config = BartConfig(vocab_size=30, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                        max_position_embeddings=64, init_std=0.5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                        decoder_start_token_id=2, forced_eos_token_id=None, forced_bos_token_id=None,
                        scale_embedding=False)
    model = BartForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.final_logits_bias.normal_(0, 2.0, generator=torch.Generator().manual_seed(1))
    return model


@pytest.mark.parametrize("eos", [28, 21])
@pytest.mark.parametrize("settings", [{"length_penalty": 1.0}, {"length_penalty": 0.8, "min_length": 4}])
def test_bart_agrees_with_generate(bart: Any, eos: int, settings: dict[str, Any]) -> None:
    # For an encoder-decoder 3.2's length (decoder start token + tokens before <eos>) equals today's (generated
    # tokens with <eos>), and both count min_length from the decoder start token. <eos> is forced at max_length - 1
    # as BART does (a beam cut at max_length without <eos> would count one token more in 3.2).
    generator = torch.Generator().manual_seed(3)
    sources = [[*torch.randint(3, 30, (n,), generator=generator).tolist(), 2] for n in (6, 3, 9, 4, 7)]
    width = max(map(len, sources))
    ids = torch.tensor([s + [1] * (width - len(s)) for s in sources])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sources])
    forced = eos
    current = bart.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=4, max_length=13,
                            min_length=settings.get("min_length", 0), length_penalty=settings["length_penalty"],
                            early_stopping=True, no_repeat_ngram_size=2, pad_token_id=1, eos_token_id=eos,
                            forced_eos_token_id=forced)
    legacy = legacy_beam_search(bart, ids, mask, num_beams=4, max_length=13, min_length=settings.get("min_length", 0),
                                length_penalty=settings["length_penalty"], early_stopping=True, eos_token_id=eos,
                                pad_token_id=1, decoder_start_token_id=2, no_repeat_ngram_size=2,
                                forced_eos_token_id=forced)
    assert legacy == _until(current[:, 1:].tolist(), eos, pad=1)


def test_legacy_defaults_read_the_model_config(bart: Any, gpt2: Any) -> None:
    bart_defaults = legacy_generation_defaults(bart)
    assert bart_defaults["forced_eos_token_id"] == 2 and bart_defaults["forced_bos_token_id"] is None
    assert bart_defaults["decoder_start_token_id"] == 2 and bart_defaults["pad_token_id"] == 1
    gpt2_defaults = legacy_generation_defaults(gpt2)
    assert gpt2_defaults["forced_eos_token_id"] is None and gpt2_defaults["early_stopping"] is False
    assert gpt2_defaults["no_repeat_ngram_size"] == 0 and gpt2_defaults["eos_token_id"] == 0


def test_prompt_too_long_for_max_length_is_an_error(gpt2: Any) -> None:
    with pytest.raises(ValueError, match="max_length"):
        legacy_beam_search(gpt2, torch.tensor([[3, 4, 5]]), None, num_beams=2, max_length=3, eos_token_id=0,
                           pad_token_id=1)
