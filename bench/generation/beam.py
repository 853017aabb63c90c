"""transformers 3.2's beam search, the one the official Prefix-Tuning / ReparamPrefix code decoded with, run on a
transformers 5 model and its KV cache.

It differs from today's `generate` in how a hypothesis is ranked and when the search stops:

- a finished hypothesis scores sum(log p) / len(hyp) ** length_penalty, where hyp is everything before the <eos>:
  the prompt and the generated tokens for a decoder-only model (GPT-2), the decoder start token and the generated
  tokens for an encoder-decoder (BART). transformers 5 divides by the generated length only (<eos> included);
- with early_stopping off, an input is done when its n-best list holds num_beams hypotheses and the best candidate
  of this step, sum / cur_len ** length_penalty, cannot beat the worst of them;
- min_length and max_length count the prompt (decoder-only) or the decoder start token (encoder-decoder).

Each input of a batch behaves as if decoded alone, as the official scripts did (GPT-2 one prompt at a time): its
lengths are its own unpadded prompt length. This module must never change a result of the current decoding path;
it is only used when a task asks for `beam_scoring: legacy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F


class LegacyBeamHypotheses:
    """The n-best finished hypotheses of one input, with transformers 3.2's scoring, replacement and stopping."""

    def __init__(self, num_beams: int, length_penalty: float, early_stopping: bool) -> None:
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping
        self.beams: list[tuple[float, list[int]]] = []
        self.worst_score = 1e9

    def __len__(self) -> int:
        return len(self.beams)

    def score(self, sum_logprobs: float, length: int) -> float:
        return sum_logprobs / length ** self.length_penalty

    def add(self, tokens: list[int], sum_logprobs: float) -> None:
        """Keep the hypothesis if the list is not full or it beats the worst one (which then leaves)."""
        score = self.score(sum_logprobs, len(tokens))
        if len(self) < self.num_beams or score > self.worst_score:
            self.beams.append((score, tokens))
            if len(self) > self.num_beams:
                ranked = sorted((s, index) for index, (s, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, cur_len: int) -> bool:
        """Full, and (early stopping) or no running beam can still beat the worst kept hypothesis."""
        if len(self) < self.num_beams:
            return False
        if self.early_stopping:
            return True
        return self.worst_score >= self.score(best_sum_logprobs, cur_len)

    def best(self) -> list[int]:
        """The highest score; among equal scores the one added last (3.2 popped the end of a stable sort)."""
        return sorted(self.beams, key=lambda beam: beam[0])[-1][1]


def legacy_generation_defaults(model: Any) -> dict[str, Any]:
    """The decoding settings transformers 3.2 took from a model's config when generate() was not given them.

    The official XSum decoding passed beams / lengths / length penalty only, so no_repeat_ngram_size and
    early_stopping came from facebook/bart-large's config; BART also forced <eos> at max_length - 1, and <bos> at
    the first step only when its config had force_bos_token_to_be_generated. GPT-2's config sets none of these.
    """
    config = model.config
    generation = getattr(model, "generation_config", None)

    def setting(name: str) -> Any:
        value = getattr(generation, name, None) if generation is not None else None
        return value if value is not None else getattr(config, name, None)

    # transformers 3.2 forced <eos> at max_length - 1 in BART's own adjust_logits_during_generation; of the two
    # families supported here, BART is the encoder-decoder one.
    is_bart = bool(getattr(config, "is_encoder_decoder", False))
    eos = setting("eos_token_id")
    pad = setting("pad_token_id")
    return {
        "eos_token_id": eos,
        "pad_token_id": pad if pad is not None else eos,
        "decoder_start_token_id": setting("decoder_start_token_id"),
        "no_repeat_ngram_size": setting("no_repeat_ngram_size") or 0,
        "early_stopping": bool(setting("early_stopping")),
        "bad_words_ids": setting("bad_words_ids"),
        "forced_bos_token_id": setting("bos_token_id") if getattr(config, "force_bos_token_to_be_generated", False)
        else None,
        "forced_eos_token_id": eos if is_bart else None,
    }


def _per_row(value: int | Sequence[int], rows: int, name: str) -> list[int]:
    if isinstance(value, int):
        return [value] * rows
    values = [int(v) for v in value]
    if len(values) != rows:
        raise ValueError(f"{name}: {len(values)} values for {rows} inputs")
    return values


def _banned_ngram_tokens(tokens: list[int], size: int) -> list[int]:
    """Tokens that would repeat an n-gram of `tokens` (3.2 looked at the whole sequence, prompt included)."""
    if size <= 0 or len(tokens) + 1 < size:
        return []
    head = tuple(tokens[len(tokens) - size + 1:]) if size > 1 else ()
    return [tokens[i + size - 1] for i in range(len(tokens) - size + 1) if tuple(tokens[i:i + size - 1]) == head]


def _banned_words(tokens: list[int], bad_words_ids: list[list[int]]) -> list[int]:
    """Last tokens of banned sequences whose beginning ends `tokens` (single tokens: always)."""
    banned = []
    for sequence in bad_words_ids:
        prefix = sequence[:-1]
        if not prefix or (len(prefix) <= len(tokens) and tokens[len(tokens) - len(prefix):] == prefix):
            banned.append(sequence[-1])
    return banned


@torch.no_grad()
def legacy_beam_search(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    num_beams: int,
    max_length: int | Sequence[int],
    min_length: int | Sequence[int] = 0,
    length_penalty: float = 1.0,
    early_stopping: bool = False,
    eos_token_id: int | None,
    pad_token_id: int | None,
    bad_words_ids: list[list[int]] | None = None,
    no_repeat_ngram_size: int = 0,
    decoder_start_token_id: int | None = None,
    forced_bos_token_id: int | None = None,
    forced_eos_token_id: int | None = None,
) -> list[list[int]]:
    """Beam search as transformers 3.2 ran it; returns each input's generated tokens (no prompt, no decoder start
    token, no <eos>).

    input_ids: (batch, width); decoder-only prompts are left-padded (attention_mask 0 on the padding) and
    encoder-decoder sources right- or left-padded. max_length / min_length: one value or one per input, counting
    that input's unpadded prompt (decoder-only) or the decoder start token (encoder-decoder), as 3.2 did; the
    official GPT-2 decoding used max_length = prompt length + 100, min_length = 5; the official XSum decoding 62 and
    11. forced_bos_token_id / forced_eos_token_id: BART's adjust_logits_during_generation (the token is forced at
    the decoder's first step / at max_length - 1); legacy_generation_defaults(model) gives the values 3.2 read from
    a model's config. num_beams 1 gives 3.2's greedy decoding.
    """
    device = input_ids.device
    batch = input_ids.shape[0]
    beams = num_beams
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    attention_mask = attention_mask.to(device=device, dtype=torch.long)
    pad = pad_token_id if pad_token_id is not None else eos_token_id
    if pad is None:
        raise ValueError("legacy_beam_search needs pad_token_id or eos_token_id")
    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    rows = batch * beams
    expand = torch.arange(batch, device=device).repeat_interleave(beams)
    bad_words = [seq for seq in (bad_words_ids or []) if seq != [eos_token_id]]

    if encoder_decoder:
        start = decoder_start_token_id if decoder_start_token_id is not None else model.config.decoder_start_token_id
        if start is None:
            raise ValueError("an encoder-decoder model needs decoder_start_token_id")
        encoder = model.get_encoder()
        encoded = encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        encoded.last_hidden_state = encoded.last_hidden_state.index_select(0, expand)
        encoder_mask = attention_mask.index_select(0, expand)
        sequences = [[int(start)] for _ in range(rows)]
        base = [1] * batch
    else:
        sequences = [[int(t) for t, m in zip(ids, mask, strict=True) if m]
                     for ids, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True)
                     for _ in range(beams)]
        base = [len(sequences[b * beams]) for b in range(batch)]
        prompt_ids = input_ids.index_select(0, expand)
        prompt_mask = attention_mask.index_select(0, expand)
        prompt_positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    max_len = _per_row(max_length, batch, "max_length")
    min_len = _per_row(min_length, batch, "min_length")
    for b in range(batch):
        if base[b] >= max_len[b]:
            raise ValueError(f"input {b} has length {base[b]}, not below max_length {max_len[b]}")

    hypotheses = [LegacyBeamHypotheses(beams, length_penalty, early_stopping) for _ in range(batch)]
    done = [False] * batch
    beam_scores = torch.zeros(batch, beams, device=device)
    beam_scores[:, 1:] = -1e9  # step one expands the first beam only, so the beams start different
    beam_scores = beam_scores.view(-1)
    generated = torch.empty(rows, 0, dtype=torch.long, device=device)
    cache: Any = None
    steps = 0
    while True:
        for b in range(batch):  # an input whose beams reached its max_length: its running beams join the n-best
            if not done[b] and base[b] + steps >= max_len[b]:
                for row in range(b * beams, (b + 1) * beams):
                    hypotheses[b].add(list(sequences[row]), float(beam_scores[row]))
                done[b] = True
        if all(done):
            break

        if encoder_decoder:
            decoder_ids = torch.tensor(sequences, device=device)
            outputs = model(encoder_outputs=encoded, attention_mask=encoder_mask,
                            decoder_input_ids=decoder_ids if cache is None else decoder_ids[:, -1:],
                            past_key_values=cache, use_cache=True, return_dict=True)
        else:
            ones = torch.ones(rows, steps, dtype=torch.long, device=device)
            mask = torch.cat([prompt_mask, ones], dim=-1)
            positions = torch.cat([prompt_positions, prompt_positions[:, -1:] + 1 + torch.arange(
                steps, device=device)], dim=-1)
            ids = torch.cat([prompt_ids, generated], dim=-1)
            if cache is not None:
                ids, positions = ids[:, -1:], positions[:, -1:]
            outputs = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                            use_cache=True, return_dict=True)
        cache = getattr(outputs, "past_key_values", None)
        logits = outputs.logits[:, -1, :].float()

        for b in range(batch):  # BART's adjust_logits_during_generation: force a token before the softmax
            cur_len = base[b] + steps
            forced = None
            if encoder_decoder and forced_bos_token_id is not None and cur_len == 1:
                forced = forced_bos_token_id
            elif forced_eos_token_id is not None and cur_len == max_len[b] - 1:
                forced = forced_eos_token_id
            if forced is not None:
                keep = logits[b * beams:(b + 1) * beams, forced].clone()
                logits[b * beams:(b + 1) * beams] = -float("inf")
                logits[b * beams:(b + 1) * beams, forced] = keep
        scores = F.log_softmax(logits, dim=-1)
        for row in range(rows):
            b = row // beams
            if eos_token_id is not None and base[b] + steps < min_len[b]:
                scores[row, eos_token_id] = -float("inf")
            banned = _banned_ngram_tokens(sequences[row], no_repeat_ngram_size)
            if bad_words:
                banned += _banned_words(sequences[row], bad_words)
            if banned:
                scores[row, banned] = -float("inf")

        vocab = scores.shape[-1]
        candidates = (scores + beam_scores[:, None]).view(batch, beams * vocab)
        top_scores, top_indices = torch.topk(candidates, 2 * beams, dim=1, largest=True, sorted=True)
        top_scores_list, top_indices_list = top_scores.tolist(), top_indices.tolist()

        next_beams: list[tuple[float, int, int]] = []  # (score, token, source row)
        for b in range(batch):
            if done[b]:
                next_beams.extend([(0.0, pad, b * beams)] * beams)
                continue
            chosen: list[tuple[float, int, int]] = []
            for rank, (score, index) in enumerate(zip(top_scores_list[b], top_indices_list[b], strict=True)):
                row, token = b * beams + index // vocab, index % vocab
                if eos_token_id is not None and token == eos_token_id:
                    if rank >= beams:  # an <eos> outside the top num_beams candidates is not a hypothesis
                        continue
                    hypotheses[b].add(list(sequences[row]), score)
                else:
                    chosen.append((score, token, row))
                if len(chosen) == beams:
                    break
            done[b] = done[b] or hypotheses[b].is_done(max(top_scores_list[b]), base[b] + steps)
            next_beams.extend(chosen)
        if all(done):
            break

        beam_scores = torch.tensor([score for score, _, _ in next_beams], device=device)
        tokens = torch.tensor([token for _, token, _ in next_beams], device=device)
        source = torch.tensor([row for _, _, row in next_beams], device=device)
        sequences = [[*sequences[row], token] for _, token, row in next_beams]
        generated = torch.cat([generated.index_select(0, source), tokens[:, None]], dim=-1)
        if cache is not None:
            cache.reorder_cache(source)
        steps += 1

    return [hypotheses[b].best()[base[b]:] for b in range(batch)]
