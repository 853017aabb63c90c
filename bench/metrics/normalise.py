"""The text normalisations of the WebNLG 2017 and DART evaluations (both from the Yale-LILY/dart repository).

WebNLG 2017 (webnlg-automatic-evaluation/evaluation.py) normalises references (bleu_ref_files_gen,
meteor_3ref_files_gen, ter_ref_files_gen) and hypotheses (read_participant + write_to_file) by different
expressions; they differ only where unidecode turns a non-word character into letters: '£20' becomes 'PS 20' in a
reference and 'ps20' in a hypothesis. DART's reference files (data/v1.1.1/generate_input_dart.py, *.target_eval)
are split and lowercased but not folded to ASCII ('piñero' stays).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bench.errors import BenchError

_WORD_SPLIT = re.compile(r"(\W)")


def _unidecode() -> Callable[[str], str]:
    try:
        from unidecode import unidecode
    except ImportError:
        raise BenchError("the WebNLG metrics need the unidecode package.",
                         hint="pip install 'peft-bench[nlp]'") from None
    return unidecode


def _split_words(text: str) -> str:
    return " ".join(" ".join(_WORD_SPLIT.split(text)).split())


def webnlg_reference(text: str) -> str:
    """unidecode(' '.join(' '.join(re.split(r'(\\W)', s)).split()).lower()): split, squeeze, lowercase, ASCII."""
    return _unidecode()(_split_words(text).lower())


def webnlg_hypothesis(text: str) -> str:
    """read_participant's unidecode(line.strip()), then write_to_file's split of unidecode(item.lower())."""
    unidecode = _unidecode()
    return _split_words(unidecode(unidecode(text.strip()).lower()))


def dart_text(text: str) -> str:
    """' '.join(' '.join(re.split(r'(\\W)', s)).split()).lower() of a stripped line without newlines (DART's
    reference files; its evaluation expects hypotheses in the same form, and this is idempotent on them)."""
    return _split_words(text.strip().replace("\n", "")).lower()
