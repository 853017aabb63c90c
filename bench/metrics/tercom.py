"""TER as tercom 0.7.25 computes it (the jar the WebNLG and DART evaluation scripts run), in Python.

sacrebleu's TER is a port of the same program but prunes its edit-distance search differently (a band around the
diagonal instead of tercom's cost beam) and looks for shifts in a different order, so on whole test sets the two
differ in the second decimal. This module follows TERcalc.java and TERtest.score_all_refs step by step, with
tercom's defaults (case-insensitive, no normalisation, punctuation kept; every edit and a shift cost 1; beam width
20; shifts of at most 10 words over at most 50 positions). Several references: the fewest edits wins and the
length is the mean reference length. It never changes the default TER (sacrebleu); it is the "tercom" variant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BEAM_WIDTH = 20
MAX_SHIFT_SIZE = 10
MAX_SHIFT_DIST = 50
INF = 999999.0


@dataclass(frozen=True)
class _Shift:
    start: int
    end: int
    moveto: int
    newloc: int


def _edit_distance(hyp: Sequence[str], ref: Sequence[str]) -> tuple[float, str]:
    """tercom's MinEditDist: (edits, alignment over ' ' match / 'S' / 'I' / 'D'), with its beam pruning."""
    rows, cols = len(ref), len(hyp)
    score = [[-1.0] * (cols + 1) for _ in range(rows + 1)]
    path = [["0"] * (cols + 1) for _ in range(rows + 1)]
    score[0][0] = 0.0
    current_best = INF
    current_first_good = 0
    cur_last_good = 0
    for j in range(cols + 1):
        last_best, current_best = current_best, INF
        first_good, current_first_good = current_first_good, -1
        last_good, cur_last_good = cur_last_good, -1
        limit = last_best + BEAM_WIDTH if j < cols else INF * 2
        word = hyp[j] if j < cols else None
        i = first_good
        while i <= rows and i <= last_good:
            here = score[i][j]
            if here < 0 or here > limit:
                i += 1
                continue
            if current_first_good == -1:
                current_first_good = i
            below = score[i + 1] if i < rows else None
            if below is not None and word is not None:
                if ref[i] == word:
                    if below[j + 1] == -1 or here < below[j + 1]:
                        below[j + 1] = here
                        path[i + 1][j + 1] = " "
                    if here < current_best:
                        current_best = here
                else:
                    cost = here + 1.0
                    if below[j + 1] < 0 or cost < below[j + 1]:
                        below[j + 1] = cost
                        path[i + 1][j + 1] = "S"
                        if cost < current_best:
                            current_best = cost
            cur_last_good = i + 1
            if word is not None:
                cost = here + 1.0
                row = score[i]
                if row[j + 1] < 0 or row[j + 1] > cost:
                    row[j + 1] = cost
                    path[i][j + 1] = "I"
            if below is not None:
                cost = here + 1.0
                if below[j] < 0 or below[j] > cost:
                    below[j] = cost
                    path[i + 1][j] = "D"
                    if i >= last_good:
                        last_good = i + 1
            i += 1
    trace = []
    i, j = rows, cols
    while i > 0 or j > 0:
        step = path[i][j]
        trace.append(step)
        if step in (" ", "S"):
            i, j = i - 1, j - 1
        elif step == "D":
            i -= 1
        elif step == "I":
            j -= 1
        else:
            raise AssertionError(f"tercom alignment: invalid path {step!r}")
    return score[rows][cols], "".join(reversed(trace))


def _word_matches(hyp: Sequence[str], ref: Sequence[str]) -> dict[tuple[str, ...], list[int]]:
    """BuildWordMatches: reference phrases (up to 11 words, all present in hyp) -> sorted start positions."""
    in_hyp = set(hyp)
    found = [word in in_hyp for word in ref]
    matches: dict[tuple[str, ...], set[int]] = {}
    for start in range(len(ref)):
        if not found[start]:
            continue
        end = start
        while end < len(ref) and end - start <= MAX_SHIFT_SIZE and found[end]:
            matches.setdefault(tuple(ref[start:end + 1]), set()).add(start)
            end += 1
    return {phrase: sorted(starts) for phrase, starts in matches.items()}


def _alignment_errors(alignment: str, hyp_len: int, ref_len: int) -> tuple[list[bool], list[bool], list[int]]:
    """FindAlignErr: which hyp / ref words are wrong, and the hyp position each ref position aligns to."""
    herr, rerr, ralign = [False] * hyp_len, [False] * ref_len, [0] * ref_len
    hpos = rpos = -1
    for symbol in alignment:
        if symbol in (" ", "S"):
            hpos, rpos = hpos + 1, rpos + 1
            herr[hpos] = rerr[rpos] = symbol == "S"
            ralign[rpos] = hpos
        elif symbol == "I":
            hpos += 1
            herr[hpos] = True
        else:
            rpos += 1
            rerr[rpos] = True
            ralign[rpos] = hpos
    return herr, rerr, ralign


def _possible_shifts(hyp: Sequence[str], matches: dict[tuple[str, ...], list[int]], herr: list[bool],
                     rerr: list[bool], ralign: list[int]) -> list[list[_Shift]]:
    """GatherAllPossShifts, in tercom's order; index = shift length - 1."""
    shifts: list[list[_Shift]] = [[] for _ in range(MAX_SHIFT_SIZE + 1)]
    for start in range(len(hyp)):
        first = matches.get((hyp[start],))
        if first is None or not any(start != ralign[m] and ralign[m] - start <= MAX_SHIFT_DIST
                                    and start - ralign[m] - 1 <= MAX_SHIFT_DIST for m in first):
            continue
        end, ok = start, True
        while ok and end < len(hyp) and end < start + MAX_SHIFT_SIZE:
            candidate = tuple(hyp[start:end + 1])
            ok = False
            targets = matches.get(candidate)
            if targets is None:
                end += 1
                continue
            if not any(herr[start:end + 1]):
                ok = True
                end += 1
                continue
            for moveto in targets:
                if not (ralign[moveto] != start and (ralign[moveto] < start or ralign[moveto] > end)
                        and ralign[moveto] - start <= MAX_SHIFT_DIST and start - ralign[moveto] <= MAX_SHIFT_DIST):
                    continue
                ok = True
                if not any(rerr[moveto:moveto + end - start + 1]):
                    continue
                for roff in range(-1, end - start + 1):
                    if roff == -1 and moveto == 0:
                        shifts[end - start].append(_Shift(start, end, -1, -1))
                    elif start != ralign[moveto + roff] and (roff == 0 or ralign[moveto + roff] != ralign[moveto]):
                        shifts[end - start].append(_Shift(start, end, moveto + roff, ralign[moveto + roff]))
            end += 1
    return shifts


def _perform_shift(words: Sequence[str], shift: _Shift) -> list[str]:
    """PerformShift: move words[start..end] after position newloc (-1: to the front)."""
    start, end, newloc = shift.start, shift.end, shift.newloc
    block = list(words[start:end + 1])
    if newloc == -1:
        return [*block, *words[:start], *words[end + 1:]]
    if newloc < start:
        return [*words[:newloc + 1], *block, *words[newloc + 1:start], *words[end + 1:]]
    if newloc > end:
        return [*words[:start], *words[end + 1:newloc + 1], *block, *words[newloc + 1:]]
    # moving inside itself
    middle_end = end + (newloc - start)
    return [*words[:start], *words[end + 1:middle_end + 1], *block, *words[middle_end + 1:]]


def _best_shift(current: list[str], ref: Sequence[str], matches: dict[tuple[str, ...], list[int]], edits: float,
                alignment: str, distances: dict[tuple[str, ...], tuple[float, str]]
                ) -> tuple[list[str], float, str] | None:
    """CalcBestShift: the shift that lowers edits + shift cost the most (None: none helps). `distances` caches
    the edit distance of each word order already tried against this reference (a pure function of it)."""
    herr, rerr, ralign = _alignment_errors(alignment, len(current), len(ref))
    candidates = _possible_shifts(current, matches, herr, rerr, ralign)
    best_cost, best = 0.0, None
    best_edits, best_alignment, best_words = edits, alignment, current
    for length in range(len(candidates) - 1, -1, -1):
        maxfix = 2.0 * (1 + length)
        curfix = edits - (best_cost + best_edits)
        if curfix > maxfix or (best_cost != 0 and curfix == maxfix):
            break
        for shift in candidates[length]:
            curfix = edits - (best_cost + best_edits)
            if curfix > maxfix or (best_cost != 0 and curfix == maxfix):
                break
            shifted = _perform_shift(current, shift)
            key = tuple(shifted)
            if key not in distances:
                distances[key] = _edit_distance(shifted, ref)
            shifted_edits, shifted_alignment = distances[key]
            gain = (best_edits + best_cost) - (shifted_edits + 1.0)
            if gain > 0 or (best_cost == 0 and gain == 0):
                best, best_cost = shift, 1.0
                best_edits, best_alignment, best_words = shifted_edits, shifted_alignment, shifted
    if best is None:
        return None
    return best_words, best_edits, best_alignment


def sentence_ter(hypothesis: str, reference: str) -> tuple[float, float]:
    """(edits, reference words) of one pair, as TERcalc.TER(String, String) with tercom's defaults."""
    hyp_text, ref_text = hypothesis.strip().lower(), reference.strip().lower()
    hyp, ref = hyp_text.split(), ref_text.split()
    if not ref_text or not hyp_text:  # TERnullstr
        if not ref_text and not hyp_text:
            return 0.0, 0.0
        if not hyp_text:
            return float(len(ref)), float(len(ref))
        return float(len(hyp)), 0.0
    matches = _word_matches(hyp, ref)
    edits, alignment = _edit_distance(hyp, ref)
    current: list[str] = list(hyp)
    shifts = 0.0
    distances: dict[tuple[str, ...], tuple[float, str]] = {}
    while (found := _best_shift(current, ref, matches, edits, alignment, distances)) is not None:
        current, edits, alignment = found
        shifts += 1.0
    return edits + shifts, float(len(ref))


def tercom_statistics(hypotheses: Sequence[str], streams: Sequence[Sequence[str | None]]) -> list[list[float]]:
    """Per item [edits, mean reference length] as tercom's score_all_refs: the reference with the fewest edits
    (the first on ties) gives the edits; the length is the mean over the references given (None = absent)."""
    stats = []
    for index, hypothesis in enumerate(hypotheses):
        references = [stream[index] for stream in streams if stream[index] is not None]
        best: float | None = None
        words = 0.0
        for reference in references:
            assert reference is not None
            edits, length = sentence_ter(hypothesis, reference)
            if best is None or edits < best:
                best = edits
            words += length
        if best is None:
            raise ValueError(f"item {index} has no reference")
        stats.append([best, words / len(references)])
    return stats
