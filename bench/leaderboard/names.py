"""Display names for papers: the names the publications print for our method, task, group and metric identifiers.

Used by the LaTeX tables and the figures; Markdown, HTML, CSV and JSON keep the identifiers the command line
takes. An identifier without an entry is shown as it is (the renderer escapes it), never guessed.
"""

from __future__ import annotations

import re

METHODS = {
    "no_share": "No-share", "simple_share": "Simple-share", "deep_share": "Deep-share",
    "no_share_shallow": "No-share (shallow)", "simple_share_shallow": "Simple-share (shallow)",
    "deep_share_shallow": "Deep-share (shallow)", "vpt_deep": "VPT-deep", "vpt_shallow": "VPT-shallow",
    "full_ft": "Full FT", "linear": "Linear", "lora": "LoRA", "adapter": "Adapter", "bitfit": "BitFit",
    "ia3": "(IA)³", "prompt_tuning": "Prompt tuning",
    # Methods of published reference rows that we do not implement, as V-PETL Bench prints them (vpetl_2024.yaml).
    "adaptformer": "AdaptFormer", "prefix_tuning": "Prefix Tuning", "u_tuning": "U-Tuning", "ssf": "SSF",
    "noah": "NOAH", "sct": "SCT", "fact": "FacT", "repadapter": "RepAdapter", "hydra": "Hydra", "lst": "LST",
    "dtl": "DTL", "hst": "HST", "gps": "GPS", "last": "LAST", "snf": "SNF",
}
# The tail of a task identifier (after the last '/'): VTAB-1k as VPT's tables print it, FGVC, NLG, the mini suites.
TASKS = {
    "cifar100": "CIFAR-100", "caltech101": "Caltech101", "dtd": "DTD", "oxford_flowers102": "Flowers102",
    "oxford_iiit_pet": "Pets", "svhn": "SVHN", "sun397": "Sun397", "patch_camelyon": "Camelyon",
    "eurosat": "EuroSAT", "resisc45": "Resisc45", "diabetic_retinopathy": "Retinopathy",
    "clevr_count": "Clevr-Count", "clevr_dist": "Clevr-Dist", "dmlab": "DMLab", "kitti_dist": "KITTI-Dist",
    "dsprites_loc": "dSpr-Loc", "dsprites_ori": "dSpr-Ori", "smallnorb_azi": "sNORB-Azim",
    "smallnorb_ele": "sNORB-Elev",
    "cub": "CUB-200-2011", "nabirds": "NABirds", "flowers": "Oxford Flowers", "dogs": "Stanford Dogs",
    "cars": "Stanford Cars",
    "e2e": "E2E", "webnlg": "WebNLG", "dart": "DART", "xsum": "XSum",
    "novel_shapes": "Novel shapes", "counting": "Counting", "orientation": "Orientation",
}
METRICS = {"top1": "Top-1 (%)", "ROUGE_L": "ROUGE-L", "ROUGE-L": "ROUGE-L", "CIDEr": "CIDEr"}
LOWER_IS_BETTER = {"TER"}  # error rates (also their _seen / _unseen variants): marked with an arrow, never bolded


def method(name: str) -> str:
    """'deep_share' -> 'Deep-share'; a published reference row keeps its source: 'vpt_deep [vpt_2022]'."""
    return METHODS.get(name, name)


def task(name: str, labels: dict[str, str] | None = None) -> str:
    """'vtab/cifar100' -> 'CIFAR-100'. Without an entry: the board's short label (unique tail) when given."""
    tail = name.rsplit("/", 1)[-1]
    if tail in TASKS and (labels is None or labels.get(name, tail) == tail):
        return TASKS[tail]
    return (labels or {}).get(name, name)


def group(name: str) -> str:
    """'natural' -> 'Natural', 'table-to-text' -> 'Table-to-text'."""
    return name[:1].upper() + name[1:]


def lower_is_better(name: str) -> bool:
    return re.split(r"[_-]", name, maxsplit=1)[0] in LOWER_IS_BETTER


def metric(name: str) -> str:
    """'ROUGE_L' -> 'ROUGE-L'; an error rate gets a down arrow: 'TER' -> 'TER ↓'."""
    return METRICS.get(name, name) + (" ↓" if lower_is_better(name) else "")
