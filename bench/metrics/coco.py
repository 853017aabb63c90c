"""The MS-COCO caption metrics as E2E's eval runs them: Stanford PTB tokenisation (Java), then ROUGE_L and CIDEr-D
from pycocoevalcap (METEOR 1.5 is in bench.metrics.meteor).

The tokenizer is pycocoevalcap's PTBTokenizer call (stanford-corenlp-3.4.1, -preserveLines -lowerCase, then
punctuation tokens dropped) with its input file in a temporary folder instead of the package folder, and one Java
start for hypotheses and references together.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.errors import BenchError
from bench.metrics.java import COCO_MISSING, coco_dir

# pycocoevalcap/tokenizer/ptbtokenizer.py PUNCTUATIONS (after -lowerCase, "-LRB-" etc. never match: kept as is).
PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-",
                          "--", "...", ";"])


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """Lowercased PTB tokens without punctuation, one string per sentence (needs Java)."""
    folder = coco_dir()
    if folder is None:
        raise BenchError(COCO_MISSING)
    jar = folder / "tokenizer" / "stanford-corenlp-3.4.1.jar"
    with tempfile.TemporaryDirectory(prefix="bench-ptb-") as tmp:
        source = Path(tmp) / "sentences.txt"
        text = "".join(s.replace("\r", " ").replace("\n", " ") + "\n" for s in sentences)
        source.write_text(text, encoding="utf-8")
        done = subprocess.run(["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines",
                               "-lowerCase", str(source)], cwd=jar.parent, capture_output=True)
    if done.returncode != 0:
        raise BenchError(f"the Stanford PTB tokenizer (Java) failed: {done.stderr.decode(errors='replace')[-500:]}")
    lines = done.stdout.decode("utf-8").split("\n")
    if len(lines) < len(sentences) or any(lines[len(sentences):]):
        raise BenchError(f"the Stanford PTB tokenizer returned {len(lines)} lines for {len(sentences)} sentences.")
    return [" ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS) for line in lines[:len(sentences)]]


def coco_rouge_l(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """Per-item COCO ROUGE-L (β 1.2; precision and recall each maximised over references), 0-1, on tokens."""
    from pycocoevalcap.rouge.rouge import Rouge

    gts, res = _coco_dicts(hypotheses, references)
    return [float(x) for x in Rouge().compute_score(gts, res)[1]]


def coco_cider(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """Per-item CIDEr-D (σ 6, clipped, ×10; IDF from these references), on tokens; the corpus score is the mean."""
    from pycocoevalcap.cider.cider import Cider

    gts, res = _coco_dicts(hypotheses, references)
    return [float(x) for x in Cider().compute_score(gts, res)[1]]


def _coco_dicts(hypotheses: Sequence[str], references: Sequence[Sequence[str]]
                ) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    return ({i: list(refs) for i, refs in enumerate(references)}, {i: [h] for i, h in enumerate(hypotheses)})
