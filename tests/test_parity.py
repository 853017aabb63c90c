"""The `paper` profile against the official code: a table of values read from the official repositories (each with
the file it comes from), checked against the resolved task specs; and every task in tasks/ loads with each of its
profiles. docs/parity.md explains each difference."""

from __future__ import annotations

from typing import Any

import pytest

from bench import registry
from bench.spec import CLEAN_PROFILE, AnyTaskSpec, load_task, profile_names

RP = "Minhchuyentoancbn/ReparamPrefix"
VPT = "KMnP/vpt"

# FGVC, prefix variants: CV/scripts/<script>_{prefix,shallow}_{deep,no,simple}_share.sh. Deep Simple-share's scripts
# set no lr / wd, so CV/configs/prompt/<config>.yaml applies. (num_tokens, base lr, weight decay) per method.
FGVC_SCRIPTS: dict[str, tuple[str, dict[str, tuple[int, float, float]]]] = {
    "cub": ("cub200", {"deep_share": (20, 25.0, 1e-4), "no_share": (20, 50.0, 1e-4),
                       "simple_share": (10, 50.0, 1e-3), "deep_share_shallow": (200, 5.0, 1e-4),
                       "no_share_shallow": (200, 10.0, 1e-4), "simple_share_shallow": (100, 1.0, 1e-4)}),
    "nabirds": ("nabirds", {"deep_share": (100, 10.0, 1e-4), "no_share": (100, 50.0, 1e-4),
                            "simple_share": (50, 50.0, 1e-4), "deep_share_shallow": (100, 1.0, 1e-4),
                            "no_share_shallow": (100, 5.0, 0.0), "simple_share_shallow": (50, 1.0, 0.0)}),
    "flowers": ("flowers", {"deep_share": (10, 10.0, 1e-3), "no_share": (10, 10.0, 0.0),
                            "simple_share": (5, 50.0, 1e-3), "deep_share_shallow": (200, 25.0, 1e-4),
                            "no_share_shallow": (200, 25.0, 1e-4), "simple_share_shallow": (100, 25.0, 1e-4)}),
    "dogs": ("dogs", {"deep_share": (200, 1.0, 1e-3), "no_share": (200, 50.0, 0.0),
                      "simple_share": (100, 25.0, 1e-3), "deep_share_shallow": (200, 0.1, 1e-4),
                      "no_share_shallow": (200, 10.0, 1e-3), "simple_share_shallow": (100, 1.0, 1e-3)}),
    "cars": ("cars", {"deep_share": (400, 10.0, 1e-4), "no_share": (400, 50.0, 0.0),
                      "simple_share": (200, 10.0, 1e-4), "deep_share_shallow": (200, 5.0, 1e-4),
                      "no_share_shallow": (200, 25.0, 0.0), "simple_share_shallow": (100, 10.0, 0.0)}),
}
SCRIPT_KIND = {"deep_share": "prefix_deep_share", "no_share": "prefix_no_share", "simple_share": "prefix_simple_share",
               "deep_share_shallow": "shallow_deep_share", "no_share_shallow": "shallow_no_share",
               "simple_share_shallow": "shallow_simple_share"}

# (task, path in the resolved spec, official value, repository + file it comes from)
OFFICIAL: list[tuple[str, str, Any, str]] = [
    # vision
    ("fgvc/cub", "protocol.precision", "fp32", f"{RP} CV/ (no autocast / GradScaler anywhere)"),
    ("fgvc/cub", "protocol.batch_size", 64, f"{RP} CV/scripts/cub200_prefix_deep_share.sh (DATA.BATCH_SIZE)"),
    ("fgvc/cub", "protocol.epochs", 100, f"{RP} CV/configs/base-prompt.yaml (TOTAL_EPOCH)"),
    ("fgvc/cub", "protocol.warmup_epochs", 10, f"{RP} CV/configs/base-prompt.yaml (WARMUP_EPOCH)"),
    ("fgvc/dogs", "protocol.seeds", [42, 44, 82, 100, 800], f"{RP} CV/scripts/dogs_prefix_no_share.sh"),
    ("fgvc/cars", "protocol.final_stage.train", ["train"], f"{RP} CV/train.py (DATA.FULL_TRAIN off)"),
    ("fgvc/cub", "protocol.methods.full_ft.batch_size", 384, f"{VPT} configs/base-finetune.yaml (BATCH_SIZE)"),
    ("fgvc/cub", "protocol.methods.full_ft.warmup_epochs", 5, f"{VPT} configs/base-finetune.yaml (WARMUP_EPOCH)"),
    ("fgvc/nabirds", "protocol.methods.linear.batch_size", 1024, f"{VPT} configs/base-linear.yaml (BATCH_SIZE)"),
    ("fgvc/nabirds", "protocol.methods.linear.grid.base_lr", [50.0, 25.0, 10.0, 5.0, 2.5, 1.0, 0.5, 0.25, 0.1, 0.05],
     f"{VPT} tune_fgvc.py (linear_main lr_range)"),
    ("fgvc/flowers", "protocol.methods.vpt_deep.grid.base_lr", [50.0, 25.0, 10.0, 5.0, 2.5, 1.0, 0.5, 0.25, 0.1],
     f"{VPT} tune_fgvc.py (prompt_main lr_range)"),
    ("fgvc/flowers", "protocol.methods.vpt_deep.grid.num_tokens", [1, 5, 10, 50, 100, 200],
     "VPT paper (prompt length searched; the chosen values are not in the repository)"),
    ("vtab/dtd", "protocol.precision", "fp32", f"{RP} CV/ (no autocast / GradScaler anywhere)"),
    ("vtab/dtd", "protocol.batch_size", 128, f"{RP} CV/README.md (tune_vtab.py example, DATA.BATCH_SIZE)"),
    ("vtab/svhn", "protocol.grid.base_lr", [50.0, 25.0, 10.0, 5.0, 2.5, 1.0, 0.5, 0.25, 0.1, 0.05],
     f"{RP} CV/tune_vtab.py (get_lrwd_range, prompt)"),
    ("vtab/svhn", "protocol.grid.weight_decay", [0.01, 0.001, 0.0001, 0.0], f"{RP} CV/tune_vtab.py (prompt)"),
    ("vtab/dmlab", "protocol.seeds", [42, 44, 82, 100, 800], f"{RP} CV/tune_vtab.py (random_seeds)"),
    ("vtab/dmlab", "protocol.final_stage.train", ["train800val200"],
     f"{RP} CV/tune_vtab.py (construct_trainval_loader)"),
    ("vtab/dmlab", "protocol.methods.full_ft.batch_size", 384, f"{VPT} configs/base-finetune.yaml"),
    ("vtab/dmlab", "protocol.methods.linear.batch_size", 1024, f"{VPT} configs/base-linear.yaml"),
    ("vtab/eurosat", "protocol.methods.vpt_shallow.grid.num_tokens", [1, 5, 10, 50, 100, 200], "VPT paper"),
    # GPT-2 table-to-text
    ("nlg/e2e", "protocol.precision", "fp32", f"{RP} NLP/gpt2/train_e2e.py (run_language_modeling.py without --fp16)"),
    ("nlg/e2e", "protocol.format", "official",
     f"{RP} NLP/transformers/src/transformers/data/datasets/language_modeling.py (' {{}} {{}} '.format(src, bos))"),
    ("nlg/e2e", "protocol.backbone_mode", "eval",
     f"{RP} NLP/gpt2/trainer_prefix.py (gpt2.train() only with use_dropout)"),
    ("nlg/e2e", "protocol.epochs", 5, f"{RP} NLP/README.md (--epoch 5)"),
    ("nlg/e2e", "protocol.batch_size", 10, f"{RP} NLP/README.md (--bsz 10)"),
    ("nlg/webnlg", "protocol.batch_size", 5, f"{RP} NLP/README.md (WebNLG --bsz 5)"),
    ("nlg/e2e", "protocol.methods.deep_share.grid.base_lr", [1e-4], f"{RP} NLP/README.md (Deep share E2E)"),
    ("nlg/e2e", "protocol.methods.no_share.grid.base_lr", [0.01], f"{RP} NLP/README.md (No share E2E)"),
    ("nlg/webnlg", "protocol.methods.no_share.grid.base_lr", [0.05], f"{RP} NLP/README.md (No share WebNLG)"),
    ("nlg/e2e", "protocol.methods.deep_share.hparams.num_tokens", 10, f"{RP} NLP/README.md (--preseqlen 5)"),
    ("nlg/e2e", "protocol.methods.deep_share.hparams.mlp_hidden", 512, f"{RP} NLP/gpt2/train_e2e.py (--mid_dim)"),
    ("nlg/e2e", "protocol.loss", "sequence_sum", f"{RP} NLP/gpt2/train_e2e.py (--objective_mode 1)"),
    ("nlg/e2e", "protocol.generation.num_beams", 5, f"{RP} NLP/gpt2/run_generation.py (num_beams=5)"),
    ("nlg/e2e", "protocol.generation.max_new_tokens", 100, f"{RP} NLP/gpt2/gen.py (--length 100)"),
    ("nlg/dart", "protocol.generation.min_length", 5, f"{RP} NLP/gpt2/run_generation.py (min_length=5)"),
    ("nlg/e2e", "protocol.generation.bad_words_ids", [[628], [198]], f"{RP} NLP/gpt2/run_generation.py"),
    ("nlg/e2e", "protocol.generation.early_stopping", False,
     f"{RP} NLP/gpt2/run_generation.py (not passed: GPT-2's config default)"),
    ("nlg/webnlg", "protocol.generation.beam_scoring", "legacy",
     f"{RP} NLP/transformers/src/transformers/generation_utils.py (v3.2.0, BeamHypotheses)"),
    ("nlg/e2e", "metric_options.bleu", "pymteval", f"{RP} NLP/gpt2/run_generation.py (measure_scores.py -p)"),
    ("nlg/webnlg", "metric_options.ter", "tercom",
     f"{RP} NLP/gpt2/DART/dart/evaluation/webnlg-automatic-evaluation/ter_eval.sh (tercom.7.25.jar)"),
    ("nlg/dart", "metric_options.dart_text", "raw", f"{RP} NLP/gpt2/DART/dart/evaluation/run_eval_on_dart.sh"),
    ("nlg/dart", "metric_options.ter", "tercom", f"{RP} NLP/gpt2/DART/dart/evaluation/run_eval_on_dart.sh"),
    # BART XSum
    ("nlg/xsum", "protocol.precision", "fp16", f"{RP} NLP/README.md (--fp16 yes) + NLP/seq2seq/train_bart.py (O1)"),
    ("nlg/xsum", "protocol.backbone_mode", "train",
     f"{RP} NLP/seq2seq/lightning_base.py (seq2seq_model is a submodule of the LightningModule)"),
    ("nlg/xsum", "protocol.epochs", 30, f"{RP} NLP/README.md (--epoch 30)"),
    ("nlg/xsum", "protocol.batch_size", 16, f"{RP} NLP/README.md (--bsz 16)"),
    ("nlg/xsum", "protocol.methods.deep_share.grid.base_lr", [5e-5], f"{RP} NLP/README.md (Deep share)"),
    ("nlg/xsum", "protocol.methods.no_share.grid.base_lr", [5e-4], f"{RP} NLP/README.md (No share)"),
    ("nlg/xsum", "protocol.methods.deep_share.hparams.num_tokens", 400, f"{RP} NLP/README.md (--preseqlen 200)"),
    ("nlg/xsum", "protocol.max_source_tokens", 512, f"{RP} NLP/seq2seq/train_bart.py (max_source_length)"),
    ("nlg/xsum", "protocol.max_target_tokens", 60, f"{RP} NLP/seq2seq/train_bart.py (max_target_length)"),
    ("nlg/xsum", "protocol.generation.num_beams", 6, f"{RP} NLP/seq2seq/finetune.py (eval_beams = 6)"),
    ("nlg/xsum", "protocol.generation.min_new_tokens", 10, f"{RP} NLP/seq2seq/finetune.py (eval_min_length 11)"),
    ("nlg/xsum", "protocol.generation.max_new_tokens", 61, f"{RP} NLP/seq2seq/finetune.py (eval_max_length 62)"),
    ("nlg/xsum", "protocol.generation.length_penalty", 0.8, f"{RP} NLP/seq2seq/train_bart.py (--length_pen 0.8)"),
    ("nlg/xsum", "protocol.generation.early_stopping", None,
     f"{RP} NLP/seq2seq/finetune.py (generate() not given it: the model config)"),
    ("nlg/xsum", "protocol.select_examples", 500, f"{RP} NLP/seq2seq/finetune.py (--n_val 500)"),
    ("nlg/xsum", "metric_options.rouge", "batch_mean", f"{RP} NLP/seq2seq/finetune.py (validation_epoch_end mean)"),
    ("nlg/xsum", "metric_options.rouge_batch_size", 8, f"{RP} NLP/seq2seq/train_bart.py (decode eval_batch_size 8)"),
    ("nlg/xsum", "metric_options.rouge_seed", 101, f"{RP} NLP/seq2seq/train_bart.py (--seed 101, pl.seed_everything)"),
]


def _at(spec: AnyTaskSpec, path: str) -> Any:
    value: Any = spec.model_dump(mode="python")
    for part in path.split("."):
        value = value[part]
    return value


def _paper(name: str) -> AnyTaskSpec:
    return load_task(registry.spec_files()[name].path, name, "paper")


@pytest.mark.parametrize("task, path, official, source", OFFICIAL, ids=[f"{t}:{p}" for t, p, _, _ in OFFICIAL])
def test_paper_profile_has_the_official_value(task: str, path: str, official: Any, source: str) -> None:
    assert _at(_paper(task), path) == official, f"{task} {path}: the official value comes from {source}"


@pytest.mark.parametrize("task", sorted(FGVC_SCRIPTS))
def test_fgvc_paper_profile_fixes_each_scripts_lr_and_wd(task: str) -> None:
    script, methods = FGVC_SCRIPTS[task]
    spec = _paper(f"fgvc/{task}")
    for method, (tokens, lr, wd) in methods.items():
        override = spec.protocol.methods[method]
        where = f"{RP} CV/scripts/{script}_{SCRIPT_KIND[method]}.sh"
        assert override.grid == {"base_lr": [lr], "weight_decay": [wd]}, where  # fixed: no search
        assert override.hparams["num_tokens"] == tokens, where
        assert override.hparams["dropout"] == (0.0 if method.endswith("shallow") else 0.1), where


def test_every_task_loads_with_each_of_its_profiles() -> None:
    for name, entry in registry.spec_files().items():
        if entry.is_suite:
            continue
        clean = load_task(entry.path, name)
        assert clean.profile == CLEAN_PROFILE
        names = profile_names(clean)
        assert names[0] == CLEAN_PROFILE and "paper" in names, f"{name} has no paper profile"
        for profile in names:
            applied = load_task(entry.path, name, profile)
            assert applied.profile == profile and applied.name == name


def test_paper_profile_changes_only_what_it_says() -> None:
    clean, paper = (load_task(registry.spec_files()["nlg/e2e"].path, "nlg/e2e", p) for p in (None, "paper"))
    clean_dump, paper_dump = clean.model_dump(mode="json"), paper.model_dump(mode="json")
    assert clean_dump["data"] == paper_dump["data"] and clean_dump["backbone"] == paper_dump["backbone"]
    assert clean.protocol.methods == paper.protocol.methods  # the README commands are already the clean values
    assert (clean.protocol.format, clean.protocol.generation.beam_scoring, clean.metric_options.bleu) == \
        ("clean", "current", "perl")


def test_clean_defaults_keep_todays_behaviour() -> None:
    spec = load_task(registry.spec_files()["mini/xsum"].path, "mini/xsum")
    assert spec.protocol.precision == "auto" and spec.protocol.backbone_mode == "eval"
    generation = spec.protocol.generation
    assert (generation.beam_scoring, generation.early_stopping, generation.min_length, generation.bad_words_ids) == \
        ("current", True, None, None)
    assert spec.metric_options.model_dump() == {"bleu": "perl", "nist": "pymteval", "rouge": "global",
                                                "rouge_batch_size": 8, "rouge_seed": 12345,
                                                "dart_text": "normalised", "ter": "sacrebleu"}


def test_clean_fixes_xsum_sizes_and_pinned_revisions() -> None:
    files = registry.spec_files()
    xsum = load_task(files["nlg/xsum"].path, "nlg/xsum")
    assert xsum.data.expected_sizes == {"train": 204045, "val": 11332, "test": 11334}
    assert xsum.backbone.revision == "cb48c1365bd826bd521f650dc2e0940aee54720c"
    for name in ("nlg/e2e", "nlg/webnlg", "nlg/dart"):
        assert load_task(files[name].path, name).backbone.revision == "46d27d4bef13a36eebe5b89bbb1bd2d072a379d0"
