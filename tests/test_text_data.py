"""The language readers on small files in each official format: linearisation as Li & Liang, grouping of
references, seen / unseen categories, hub fallback up to the load call, and clear errors on bad files."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from bench.data.text import linearise_e2e_mr, read_text_split
from bench.errors import BenchError
from bench.spec import TextDataSpec, TextTaskSpec
from bench.train.modality import data_status as check_task


def _data(root: Path, source: str, splits: dict[str, str], **extra: Any) -> TextDataSpec:
    return TextDataSpec(source=source, root=str(root), splits=splits, **extra)


# ---------------------------------------------------------------- E2E


VAULTS = "name : The Vaults | Type : pub | price : more than £ 30 | customer rating : 5 out of 5 | near : Café Adriatic"
BLUE = "name : The Cambridge Blue | Type : pub | food : English | price : cheap | near : Café Brazil"
E2E_VALID = "".join(f"{mr}||{ref}\n" for mr, ref in [
    (VAULTS, "The Vaults pub near Café Adriatic has a 5 star rating . Prices start at £ 30 ."),
    (VAULTS, "Close to Café Adriatic , The Vaults pub is pricey but rated 5 out of 5 ."),
    (BLUE, "The Cambridge Blue is a cheap English pub near Café Brazil ."),
    (VAULTS, "A third reference for The Vaults ."),
])


def test_e2e_src1_groups_references_per_mr_in_first_occurrence_order(tmp_path: Path) -> None:
    (tmp_path / "src1_valid.txt").write_text(E2E_VALID, encoding="utf-8")
    split = read_text_split(_data(tmp_path, "e2e", {"val": "src1_valid.txt"}), "val", "t")
    assert [i.source for i in split.items] == [VAULTS, BLUE]
    assert len(split.items[0].references) == 3 and split.items[0].references[2] == "A third reference for The Vaults ."
    assert len(split.pairs) == 4 and split.pairs[1][1].startswith("Close to")
    assert len(split.fingerprint) == 16


def test_e2e_csv_and_raw_mrs_get_li_and_liang_key_names(tmp_path: Path) -> None:
    assert linearise_e2e_mr("name[Blue Spice], eatType[coffee shop], priceRange[cheap], customer rating[low], "
                            "familyFriendly[yes], near[Burger King]") == (
        "name : Blue Spice | Type : coffee shop | price : cheap | customer rating : low | family friendly : yes"
        " | near : Burger King")
    (tmp_path / "devset.csv").write_text(
        'mr,ref\n"name[Blue Spice], eatType[pub]",Blue Spice is a pub.\n"name[Blue Spice], eatType[pub]",'
        '"A pub, Blue Spice."\n', encoding="utf-8")
    split = read_text_split(_data(tmp_path, "e2e", {"val": "devset.csv"}), "val", "t")
    assert split.items[0].source == "name : Blue Spice | Type : pub"
    assert split.items[0].references == ("Blue Spice is a pub.", "A pub, Blue Spice.")


def test_e2e_bad_line_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "src1_test.txt").write_text(E2E_VALID + "name : X | Type : pub without separator\n")
    with pytest.raises(BenchError) as caught:
        read_text_split(_data(tmp_path, "e2e", {"test": "src1_test.txt"}), "test", "t")
    assert "line 5" in str(caught.value) and "src1_test.txt" in str(caught.value)
    with pytest.raises(BenchError, match="cannot read the meaning representation"):
        linearise_e2e_mr("name: Blue Spice")


def test_expected_sizes_catch_a_truncated_or_cleaned_release(tmp_path: Path) -> None:
    (tmp_path / "src1_valid.txt").write_text(E2E_VALID)
    data = _data(tmp_path, "e2e", {"val": "src1_valid.txt"}, expected_sizes={"val": 547})
    with pytest.raises(BenchError, match="has 2 distinct inputs, expected 547"):
        read_text_split(data, "val", "nlg/e2e")


# ---------------------------------------------------------------- WebNLG 2017


def _webnlg_entry(category: str, triples: list[tuple[str, str, str]], lexes: list[tuple[str, str]]) -> dict:
    return {"category": category, "size": str(len(triples)),
            "modifiedtripleset": [{"subject": s, "property": p, "object": o} for s, p, o in triples],
            "lexicalisations": [{"lex": lex, "comment": comment, "lid": f"Id{n}"}
                                for n, (lex, comment) in enumerate(lexes, start=1)]}


def test_webnlg_json_linearisation_categories_and_good_lexicalisations(tmp_path: Path) -> None:
    entries = [
        {"1": _webnlg_entry("Airport", [("Aarhus_Airport", "cityServed", '"Aarhus, Denmark"'),
                                        ("Aarhus_Airport", "elevationAboveTheSeaLevel", "25.0")],
                            [("Aarhus Airport serves Aarhus, Denmark.", "good"), ("bad text", "bad")])},
        {"2": _webnlg_entry("Athlete", [("Alan_Shearer", "club", "Newcastle_United_F.C.")],
                            [("Alan Shearer played for Newcastle United.", "good"),
                             ("Shearer was at Newcastle.", "good")])},
    ]
    (tmp_path / "test.json").write_text(json.dumps({"entries": entries}))
    split = read_text_split(_data(tmp_path, "webnlg2017", {"test": "test.json"}), "test", "t")
    first, second = split.items
    # Li & Liang's code puts ' | ' before every triple, the first one included.
    assert first.source == (' | Aarhus_Airport : cityServed : "Aarhus, Denmark" | Aarhus_Airport : '
                            "elevationAboveTheSeaLevel : 25.0")
    assert first.references == ("Aarhus Airport serves Aarhus, Denmark.",)
    assert (first.category, second.category) == ("Airport", "Athlete")
    assert (first.item_id, second.item_id) == ("1", "2")
    assert len(split.pairs) == 3  # the "bad" lexicalisation is not trained on


def test_webnlg_scoring_splits_seen_and_unseen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.metrics
    from bench.train.text import score_split

    monkeypatch.setattr(bench.metrics, "java_available", lambda: False)  # BLEU's subsets are tested, not METEOR

    entries = [{"1": _webnlg_entry("Airport", [("A", "p", "B")], [("the airport a serves b", "good")])},
               {"2": _webnlg_entry("Athlete", [("C", "q", "D")], [("the athlete c plays for d", "good")])}]
    (tmp_path / "test.json").write_text(json.dumps({"entries": entries}))
    task = TextTaskSpec.model_validate({
        "name": "t", "metric": "webnlg2017", "primary_metric": "BLEU",
        "backbone": {"kind": "gpt2", "model": "gpt2"},
        "data": {"source": "webnlg2017", "root": str(tmp_path),
                 "splits": {"train": "test.json", "val": "test.json", "test": "test.json"}}})
    split = read_text_split(task.data, "test", "t")
    report = score_split(task, split, ["the airport a serves b", "something else entirely here"])
    assert report.scores["BLEU_seen"] == pytest.approx(100.0)
    assert report.scores["BLEU_unseen"] < 10.0


def test_webnlg_damaged_entry_is_named(tmp_path: Path) -> None:
    (tmp_path / "dev.json").write_text(json.dumps({"entries": [{"1": {"category": "Airport"}}]}))
    with pytest.raises(BenchError, match="entry 1 lacks"):
        read_text_split(_data(tmp_path, "webnlg2017", {"val": "dev.json"}), "val", "t")
    (tmp_path / "dev.json").write_text('{"entries": [')
    with pytest.raises(BenchError, match="not valid JSON"):
        read_text_split(_data(tmp_path, "webnlg2017", {"val": "dev.json"}), "val", "t")


# ---------------------------------------------------------------- DART


def test_dart_lowercases_relations_and_keeps_every_annotation(tmp_path: Path) -> None:
    entries = [{"tripleset": [["Mars Hill College", "JOINED", "1973"], ["Mars Hill College", "LOCATION",
                                                                         "Mars Hill, North Carolina"]],
                "subtree_was_extended": False,
                "annotations": [{"source": "WikiSQL_decl_sents", "text": "A school from Mars Hill joined in 1973."},
                                {"source": "WikiSQL_decl_sents", "text": "Mars Hill College joined in 1973."}]}]
    (tmp_path / "dev.json").write_text(json.dumps(entries))
    split = read_text_split(_data(tmp_path, "dart", {"val": "dev.json"}), "val", "t")
    (item,) = split.items
    assert item.source == "Mars Hill College : joined : 1973 | Mars Hill College : location : Mars Hill, North Carolina"
    assert len(item.references) == 2 and len(split.pairs) == 2 and item.category == ""


# ---------------------------------------------------------------- XSum


def test_xsum_seq2seq_layout_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "test.source").write_text("First  article text.\nSecond article.\n")
    (tmp_path / "test.target").write_text("Summary one.\nSummary two.\n")
    split = read_text_split(_data(tmp_path, "xsum", {"test": "test.source"}), "test", "t")
    assert [i.source for i in split.items] == ["First article text.", "Second article."]
    assert split.items[1].references == ("Summary two.",)
    (tmp_path / "val.jsonl").write_text(json.dumps({"document": "Doc.", "summary": "Sum.", "id": "3461"}) + "\n")
    val = read_text_split(_data(tmp_path, "xsum", {"val": "val.jsonl"}), "val", "t")
    assert val.items[0].item_id == "3461" and val.pairs == [("Doc.", "Sum.")]


def test_xsum_line_count_mismatch_and_missing_target(tmp_path: Path) -> None:
    (tmp_path / "test.source").write_text("a\nb\n")
    (tmp_path / "test.target").write_text("only one\n")
    data = _data(tmp_path, "xsum", {"test": "test.source"})
    with pytest.raises(BenchError, match="2 articles but 1 summaries"):
        read_text_split(data, "test", "t")
    (tmp_path / "test.target").unlink()
    with pytest.raises(BenchError, match="missing test.target"):
        read_text_split(data, "test", "t")


# ---------------------------------------------------------------- missing data and the hub route


def test_missing_files_without_hub_name_the_folder_and_the_fix(tmp_path: Path) -> None:
    data = _data(tmp_path / "nowhere", "dart", {"test": "dart-test.json"}, download_hint="Copy DART here.")
    with pytest.raises(BenchError) as caught:
        read_text_split(data, "test", "nlg/dart")
    text = str(caught.value)
    assert "nowhere/dart-test.json" in text and "Copy DART here." in text and "data.root" in text
    with pytest.raises(BenchError, match="has no split 'val'"):
        read_text_split(data, "val", "nlg/dart")


class _FakeRows(list):  # what load_dataset returns, as far as the readers use it
    column_names = ["meaning_representation", "human_reference"]


def test_hub_fallback_calls_load_dataset_with_the_pinned_revision(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple] = []

    def load_dataset(repo: str, config: str | None = None, **kwargs: Any) -> _FakeRows:
        calls.append((repo, config, kwargs))
        return _FakeRows([{"meaning_representation": "name[Alimentum], area[city centre]",
                           "human_reference": "Alimentum is in the city centre."}] * 2)

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    data = _data(tmp_path / "absent", "e2e", {"test": "src1_test.txt"},
                 hub={"repo": "tuetschek/e2e_nlg", "revision": "refs/convert/parquet", "config": "default",
                      "splits": {"test": "test"}})
    split = read_text_split(data, "test", "nlg/e2e")
    assert calls == [("tuetschek/e2e_nlg", "default", {"revision": "refs/convert/parquet", "split": "test"})]
    assert split.items[0].source == "name : Alimentum | area : city centre" and len(split.items[0].references) == 2
    assert split.origin.startswith("hub:tuetschek/e2e_nlg@refs/convert/parquet")


def test_hub_failure_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def load_dataset(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("offline")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    data = _data(tmp_path / "absent", "xsum", {"test": "test.source"}, download_hint="Put XSum files here.",
                 hub={"repo": "EdinburghNLP/xsum", "revision": "abc", "splits": {"test": "test"}})
    with pytest.raises(BenchError) as caught:
        read_text_split(data, "test", "nlg/xsum")
    assert "EdinburghNLP/xsum@abc" in str(caught.value) and "ConnectionError: offline" in str(caught.value)
    assert "Put XSum files here." in str(caught.value)


def test_real_task_specs_report_their_data_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import registry

    monkeypatch.setenv("BENCH_DATA", str(tmp_path))
    states = {name: check_task(registry.load_task_by_name(name)).state
              for name in ("nlg/e2e", "nlg/webnlg", "nlg/dart", "nlg/xsum")}
    assert states == {"nlg/e2e": "on demand", "nlg/webnlg": "missing", "nlg/dart": "missing",
                      "nlg/xsum": "on demand"}
    # With the files in place the state is ready, with item counts (no expected_sizes in this cut-down copy).
    folder = tmp_path / "dart"
    folder.mkdir()
    entry = [{"tripleset": [["a", "B", "c"]], "annotations": [{"source": "x", "text": "a b c."}]}]
    for name in ("train", "dev", "test"):
        (folder / f"dart-v1.1.1-full-{name}.json").write_text(json.dumps(entry))
    task = registry.load_task_by_name("nlg/dart").model_copy(deep=True)
    task.data.expected_sizes.clear()
    status = check_task(task)
    assert status.state == "ready" and status.detail == "train 1, val 1, test 1"
