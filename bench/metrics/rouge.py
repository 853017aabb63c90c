"""XSUM ROUGE as Li & Liang's seq2seq/utils.py calculate_rouge: rouge_score, stemmed, rouge1 / rouge2 / rougeL,
BootstrapAggregator mid F1 ×100.

The aggregator resamples with the global numpy generator; it is seeded here (and the caller's numpy state restored)
so the same outputs always give the same number. The mid value is close to, but not, the plain mean.

Two ways to aggregate: "global" (the default) takes one bootstrap mid over all items; "batch_mean" is the number
the official code printed for the test set: finetune.py scores each decoding batch with calculate_rouge (the mid
rounded to 4 decimals) and reports the mean of those per-batch numbers, every batch weighing the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ROUGE_KEYS = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L"}
BOOTSTRAP_SEED = 12345  # sacrebleu's default seed; any fixed value makes the mid reproducible


def rouge_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]], seed: int = BOOTSTRAP_SEED,
                 batch_size: int | None = None) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(bootstrap-mid F1 ×100 per key, per-item F1 ×100 per key). Several references: the best F1 per key
    (rouge_score's score_multi); XSUM has one.

    batch_size None: one mid over all items. batch_size n ("batch_mean"): the mean over consecutive batches of n
    items (the last one may be shorter) of each batch's mid ×100 rounded to 4 decimals; numpy is seeded once,
    before the first batch, and the batches draw from it in order, as one process decoding the test set did.
    """
    from rouge_score import rouge_scorer, scoring, tokenizers

    # The tokenizer rouge_score builds for use_stemmer=True, passed explicitly so it does not log each call.
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS), tokenizer=tokenizers.DefaultTokenizer(use_stemmer=True))
    results = []
    per_item: dict[str, list[float]] = {name: [] for name in ROUGE_KEYS.values()}
    for hypothesis, refs in zip(hypotheses, references, strict=True):
        result = scorer.score(refs[0], hypothesis) if len(refs) == 1 else scorer.score_multi(list(refs), hypothesis)
        results.append(result)
        for key, name in ROUGE_KEYS.items():
            per_item[name].append(100.0 * result[key].fmeasure)
    size = batch_size or len(results)
    batches = []
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        for start in range(0, len(results), size):
            aggregator = scoring.BootstrapAggregator()
            for result in results[start:start + size]:
                aggregator.add_scores(result)
            aggregate = aggregator.aggregate()
            batches.append({key: 100.0 * float(aggregate[key].mid.fmeasure) for key in ROUGE_KEYS})
    finally:
        np.random.set_state(state)
    if batch_size is None:
        scores = {name: batches[0][key] for key, name in ROUGE_KEYS.items()}
    else:
        scores = {name: float(np.mean([round(batch[key], 4) for batch in batches])) for key, name in ROUGE_KEYS.items()}
    return scores, per_item
