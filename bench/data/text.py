"""Reading the language data sets in their official formats, linearised as Li & Liang did.

Every reader returns a `TextSplit`: the evaluation items (one per distinct input, in first-occurrence order,
with all its references, as the official metric scripts expect) and the training pairs (one per reference).

- E2E: Li & Liang's `src1_*.txt` (`MR||reference` per line, keys already renamed, text pre-tokenised), the
  official CSVs (`mr,ref`), or the hub parquet (`meaning_representation`, `human_reference`). Raw MRs
  (`name[X], eatType[pub], ...`) get Li & Liang's key renaming (`name : X | Type : pub | ...`); their text
  tokenisation is not re-created, so only the src1 files reproduce their numbers exactly.
- WebNLG 2017: Li & Liang's JSON (`{"entries": [{"1": {...}}, ...]}`). Input ` | s : p : o | s : p : o`
  (every triple preceded by ' | ', as their code does); training pairs use the lexicalisations marked
  "good"; the item's category gives the seen / unseen test subsets.
- DART v1.1.1: the official JSON array; input `s : p : o | ...` with the relation lowercased, references
  = every annotation.
- XSum: the seq2seq layout (`<split>.source` + `<split>.target`, one document per line), a JSON-lines file
  with `document` / `summary` (/ `id`), or the hub parquet.

When the files under `data.root` are absent, `data.prepare` writes them (mini tasks) or `data.hub` is read
with `datasets.load_dataset` at the pinned revision; otherwise the error names the folder and what to get.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.data.status import DataStatus
from bench.errors import BenchError
from bench.spec import TextDataSpec, TextTaskSpec

# Li & Liang's renaming of the original E2E attribute names (their src1 files).
E2E_KEY_NAMES = {"eatType": "Type", "priceRange": "price", "familyFriendly": "family friendly",
                 "customerRating": "customer rating"}
_MR_PART = re.compile(r"\s*([^\[\],]+?)\s*\[([^\]]*)\]\s*(?:,|$)")


@dataclass(frozen=True)
class TextItem:
    """One evaluation input with all its references; `category` is WebNLG's DBpedia category."""

    source: str
    references: tuple[str, ...]
    category: str = ""
    item_id: str = ""


@dataclass(frozen=True)
class TextSplit:
    name: str
    items: list[TextItem]
    pairs: list[tuple[str, str]]  # (source, target) training pairs, one per reference
    origin: str  # the file or hub dataset it was read from
    fingerprint: str = field(default="")


# ---------------------------------------------------------------- entry points


_CACHE: dict[tuple[str, str, str], TextSplit] = {}


def read_text_split(data: TextDataSpec, split: str, task_name: str) -> TextSplit:
    """The split's items and training pairs; problems name the file (and line) and the fix."""
    if split not in data.splits:
        raise BenchError(f"task '{task_name}' has no split '{split}'. Splits: {', '.join(data.splits)}.",
                         field="data.splits")
    path = _ensure_local(data, split, task_name)
    if path is None:
        signature = f"hub:{data.hub.repo}@{data.hub.revision}" if data.hub else "hub"
    else:
        stat = path.stat()
        signature = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
    key = (data.model_dump_json(), split, signature)
    if key not in _CACHE:
        parsed = _read_hub(data, split, task_name) if path is None else _read_file(data.source, path, split)
        _check_size(data, parsed, task_name)
        _CACHE[key] = parsed
    return _CACHE[key]


def check_text_task(task: TextTaskSpec) -> DataStatus:
    """`bench data status` for a language task: ready / on demand / missing / corrupt."""
    data = task.data
    root = data.resolved_root()
    if data.prepare and not root.is_dir():
        return DataStatus(task.name, "on demand", f"generated on first use by {data.prepare}", "nothing")
    absent = [s for s in data.splits if not (root / data.splits[s]).is_file()]
    if absent and data.hub is not None:
        return DataStatus(task.name, "on demand",
                          f"read from the hub dataset {data.hub.repo}@{data.hub.revision} on first use",
                          f"nothing with network access; offline: {data.hint()}")
    if absent:
        where = ", ".join(str(root / data.splits[s]) for s in absent)
        return DataStatus(task.name, "missing", f"no file {where}", data.hint())
    sizes = []
    for split in data.splits:
        try:
            sizes.append(f"{split} {len(read_text_split(data, split, task.name).items)}")
        except BenchError as exc:
            return DataStatus(task.name, "corrupt", str(exc), "Download the data again (or fix the named file).")
    return DataStatus(task.name, "ready", ", ".join(sizes), "")


def _ensure_local(data: TextDataSpec, split: str, task_name: str) -> Path | None:
    """The split's file, after running `data.prepare` if needed; None = read the hub copy instead."""
    from bench.data.splits import _call_prepare

    root = data.resolved_root()
    path = root / data.splits[split]
    if not path.is_file() and data.prepare:
        _call_prepare(data.prepare, root, task_name)
    if path.is_file():
        return path
    if data.hub is not None:
        return None
    raise BenchError(f"task '{task_name}': data not found (no file {path}).", field="data.root", hint=data.hint())


def _check_size(data: TextDataSpec, parsed: TextSplit, task_name: str) -> None:
    expected = data.expected_sizes.get(parsed.name)
    if expected is not None and len(parsed.items) != expected:
        raise BenchError(
            f"split '{parsed.name}' of task '{task_name}' has {len(parsed.items)} distinct inputs, expected "
            f"{expected}.", file=parsed.origin,
            hint="The file is truncated or from another release (e.g. cleaned E2E); download the official one.")


def _finish(name: str, origin: str, pairs: list[tuple[str, str]], items: list[TextItem]) -> TextSplit:
    if not items:
        raise BenchError(f"split '{name}' holds no examples.", file=origin, hint="The file is empty or truncated.")
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps([item.source, item.references, item.category, item.item_id]).encode())
    for pair in pairs:
        digest.update(json.dumps(pair).encode())
    return TextSplit(name, items, pairs, origin, digest.hexdigest()[:16])


def _group(name: str, origin: str, pairs: list[tuple[str, str]]) -> TextSplit:
    """Items = distinct sources in first-occurrence order, each with all its references (E2E convention)."""
    references: dict[str, list[str]] = {}
    for source, target in pairs:
        references.setdefault(source, []).append(target)
    items = [TextItem(source, tuple(refs)) for source, refs in references.items()]
    return _finish(name, origin, pairs, items)


# ---------------------------------------------------------------- local files


def _read_file(source: str, path: Path, split: str) -> TextSplit:
    if source == "e2e":
        return _group(split, str(path), _e2e_pairs(path))
    if source == "webnlg2017":
        return _webnlg(split, path, _load_json(path))
    if source == "dart":
        return _dart(split, str(path), _load_json(path))
    return _xsum_file(split, path)


def _text_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise BenchError(f"not UTF-8 text ({exc.reason} at byte {exc.start}).", file=path,
                         hint="Download the file again; it is damaged or in another encoding.") from exc


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"not valid JSON ({exc}).", file=path,
                         hint="The file is truncated or damaged; download it again.") from exc


def _e2e_pairs(path: Path) -> list[tuple[str, str]]:
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        if rows and not {"mr", "ref"} <= set(rows[0]):
            raise BenchError(f"E2E CSV needs the columns 'mr' and 'ref', found {sorted(rows[0])}.", file=path,
                             hint="Use trainset.csv / devset.csv / testset_w_refs.csv of tuetschek/e2e-dataset.")
        return [(linearise_e2e_mr(row["mr"], f"{path}, row {n}"), row["ref"].strip())
                for n, row in enumerate(rows, start=2)]
    pairs = []
    for number, line in enumerate(_text_lines(path), start=1):
        if not line.strip():
            continue
        source, sep, target = line.partition("||")
        if not sep or not source.strip() or not target.strip():
            raise BenchError(f"line {number} is not 'MR||reference': {line[:80]!r}.", file=path,
                             hint="Use Li & Liang's src1_*.txt files unchanged.")
        pairs.append((source.strip(), target.strip()))
    return pairs


def linearise_e2e_mr(mr: str, where: str = "MR") -> str:
    """'name[The Vaults], eatType[pub]' -> 'name : The Vaults | Type : pub' (Li & Liang's key names)."""
    parts = _MR_PART.findall(mr)
    if not parts or _MR_PART.sub("", mr).strip(" ,"):
        raise BenchError(f"{where}: cannot read the meaning representation {mr[:80]!r}.",
                         hint="E2E MRs look like 'name[The Vaults], eatType[pub], near[Café Adriatic]'.")
    return " | ".join(f"{E2E_KEY_NAMES.get(key, key)} : {value.strip()}" for key, value in parts)


def _webnlg(split: str, path: Path, document: Any) -> TextSplit:
    entries = document.get("entries") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise BenchError("expected Li & Liang's WebNLG JSON: an object with a list 'entries'.", file=path,
                         hint="Use data/webnlg_challenge_2017/{train,dev,test}.json of XiangLi1999/PrefixTuning.")
    items: list[TextItem] = []
    pairs: list[tuple[str, str]] = []
    for number, wrapper in enumerate(entries, start=1):
        try:
            (entry_id, entry), = wrapper.items()
            triples = entry["modifiedtripleset"]
            source = "".join(f" | {t['subject']} : {t['property']} : {t['object']}" for t in triples)
            lexes = entry["lexicalisations"]
            good = [lex["lex"].strip() for lex in lexes if lex.get("comment", "good") == "good"]
            references = good or [lex["lex"].strip() for lex in lexes]
            category = str(entry["category"])
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise BenchError(f"entry {number} lacks {exc} (needs category, modifiedtripleset with subject / "
                             "property / object, lexicalisations with lex).", file=path,
                             hint="The file is damaged or not the 2017 challenge JSON; download it again.") from exc
        if not triples or not references:
            raise BenchError(f"entry {number} has no triples or no references.", file=path,
                             hint="The file is damaged; download it again.")
        items.append(TextItem(source, tuple(references), category, str(entry_id)))
        pairs.extend((source, ref) for ref in good)
    return _finish(split, str(path), pairs, items)


def _dart(split: str, origin: str, entries: Any) -> TextSplit:
    if not isinstance(entries, list):
        raise BenchError("expected the DART v1.1.1 JSON array of entries.", file=origin,
                         hint="Use dart-v1.1.1-full-{train,dev,test}.json of Yale-LILY/dart.")
    items: list[TextItem] = []
    pairs: list[tuple[str, str]] = []
    for number, entry in enumerate(entries, start=1):
        try:
            source = " | ".join(f"{s} : {p.lower()} : {o}" for s, p, o in entry["tripleset"])
            annotations = entry["annotations"]
            texts = annotations["text"] if isinstance(annotations, dict) else [a["text"] for a in annotations]
            references = [t.strip() for t in texts]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BenchError(f"entry {number} lacks {exc} (needs tripleset [[s, p, o], ...] and annotations "
                             "[{text}, ...]).", file=origin, hint="The file is damaged; download it again.") from exc
        if not source or not references:
            raise BenchError(f"entry {number} has no triples or no annotations.", file=origin,
                             hint="The file is damaged; download it again.")
        items.append(TextItem(source, tuple(references), item_id=str(number - 1)))
        pairs.extend((source, ref) for ref in references)
    return _finish(split, origin, pairs, items)


def _xsum_file(split: str, path: Path) -> TextSplit:
    if path.suffix in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(_text_lines(path), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows.append((row["document"], row["summary"], str(row.get("id", number - 1))))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise BenchError(f"line {number} is not a JSON object with 'document' and 'summary' ({exc}).",
                                 file=path,
                                 hint="One article per line: {\"document\": ..., \"summary\": ...}.") from exc
        return _xsum(split, str(path), rows)
    target_path = path.with_suffix(".target")
    if not target_path.is_file():
        raise BenchError(f"no summaries beside the articles (missing {target_path.name}).", file=target_path,
                         hint="The seq2seq layout has <split>.source and <split>.target side by side.")
    documents, summaries = _text_lines(path), _text_lines(target_path)
    if len(documents) != len(summaries):
        raise BenchError(f"{len(documents)} articles but {len(summaries)} summaries in {target_path.name}.",
                         file=path, hint="One of the two files is truncated; extract the archive again.")
    return _xsum(split, str(path), [(d, s, str(n)) for n, (d, s) in enumerate(zip(documents, summaries, strict=True))])


def _xsum(split: str, origin: str, rows: Iterable[tuple[str, str, str]]) -> TextSplit:
    items: list[TextItem] = []
    pairs: list[tuple[str, str]] = []
    for document, summary, item_id in rows:
        document, summary = " ".join(document.split()), summary.strip()
        items.append(TextItem(document, (summary,), item_id=item_id))
        pairs.append((document, summary))
    return _finish(split, origin, pairs, items)


# ---------------------------------------------------------------- hub copies


def _read_hub(data: TextDataSpec, split: str, task_name: str) -> TextSplit:
    hub = data.hub
    assert hub is not None
    hub_split = hub.splits.get(split)
    if hub_split is None:
        raise BenchError(f"task '{task_name}': the hub copy has no split for '{split}'.", field="data.hub.splits")
    origin = f"hub:{hub.repo}@{hub.revision}/{hub.config or ''}/{hub_split}"
    try:
        import datasets
    except ImportError as exc:
        raise BenchError(f"task '{task_name}': the files under {data.resolved_root()} are missing and reading "
                         f"the hub copy {hub.repo} needs the 'datasets' package.", field="data.root",
                         hint="pip install 'peft-bench[nlp]', or: " + data.hint()) from exc
    from bench.hub import prefer_offline

    offline = prefer_offline()  # offline: the local datasets cache or an immediate error, never minutes of retries
    try:
        rows = datasets.load_dataset(hub.repo, hub.config, revision=hub.revision, split=hub_split)
    except Exception as exc:  # network, missing repo, changed layout: all mean "get the files by hand"
        first = str(exc).splitlines()[0][:200] if str(exc).strip() else ""
        why = (f"offline: {offline}; " if offline else "") + f"{type(exc).__name__}: {first}"
        raise BenchError(f"task '{task_name}': no local files under {data.resolved_root()} and the hub dataset "
                         f"{hub.repo}@{hub.revision} could not be read ({why}).",
                         field="data.hub", hint=data.hint()) from exc
    columns = set(getattr(rows, "column_names", None) or [])
    needed = {"e2e": {"meaning_representation", "human_reference"}, "xsum": {"document", "summary"}}.get(
        data.source)
    if needed is None:
        raise BenchError(f"task '{task_name}': no hub reader for source '{data.source}'.", field="data.hub",
                         hint=data.hint())
    if not needed <= columns:
        raise BenchError(f"{origin} has columns {sorted(columns)}, expected {sorted(needed)}.", field="data.hub",
                         hint="Pin a revision with the documented layout, or: " + data.hint())
    if data.source == "e2e":
        pairs = [(linearise_e2e_mr(row["meaning_representation"], f"{origin}, row {n}"),
                  row["human_reference"].strip()) for n, row in enumerate(rows)]
        return _group(split, origin, pairs)
    return _xsum(split, origin, ((row["document"], row["summary"], str(row.get("id", n)))
                                 for n, row in enumerate(rows)))
