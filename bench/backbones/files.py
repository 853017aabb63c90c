"""Where a transformers backbone's config, tokenizer and weights come from (GPT-2, BART), and the one-paragraph
errors when they are not on this machine. It must never reach the hub for a `pretrained: false` build whose
config is shipped (bench/assets/configs) or in a local folder.

Order of the sources: a local folder (`backbone.model` is a path, or 'bench:<asset>'); for the config of a random-
weight build, the copy shipped with bench for the pinned revision; the Hugging Face cache; the hub, only for
pre-trained weights (and for a config bench does not ship), and only when `bench.hub.prefer_offline` finds it
reachable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

from bench.errors import BenchError

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
CONFIGS_DIR = ASSETS_DIR / "configs"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


def resolve_model_path(name: str) -> str:
    """'bench:<asset>' -> the folder shipped in bench/assets; anything else is a hub id or a folder."""
    if name.startswith("bench:"):
        return str(ASSETS_DIR / name.removeprefix("bench:"))
    return name


def is_local(spec: Any) -> bool:
    return Path(resolve_model_path(spec.model)).is_dir()


def shipped_config(model: str, revision: str | None) -> Path | None:
    """The config.json copy bench ships for a hub id at its pinned revision (bench/assets/configs/index.json), or
    None: another model, or a spec that pins another revision."""
    index = json.loads((CONFIGS_DIR / "index.json").read_text())["models"]
    entry = index.get(model)
    if entry is None or (revision is not None and revision != entry["revision"]):
        return None
    return CONFIGS_DIR / entry["config"]


def read_config(spec: Any, *, hub: bool) -> Any:
    """The model's configuration with the spec's overrides: from a local folder, the shipped copy, the Hugging Face
    cache, or (hub=True, when reachable) the hub."""
    from transformers import AutoConfig

    source = resolve_model_path(spec.model)
    shipped = None if Path(source).is_dir() else shipped_config(spec.model, spec.revision)
    if shipped is not None:
        return AutoConfig.from_pretrained(str(shipped), **spec.config_overrides)
    offline = _offline_reason(spec, hub)
    try:
        return AutoConfig.from_pretrained(source, revision=spec.revision, local_files_only=offline is not None,
                                          **spec.config_overrides)
    except OSError as exc:
        if Path(source).is_dir():
            _incomplete_folder(spec, source, exc)
        raise BenchError(
            f"the config of the {spec.kind} model '{spec.model}'{_at(spec)} is not on this machine"
            f"{_why(offline)}: {_first_line(exc)}",
            field="backbone.model",
            hint=f"bench ships configs for {', '.join(_shipped_models())} only. Get config.json where there is "
            f"network with `{download_command(spec, 'config.json')}` (it lands in the Hugging Face cache, "
            f"{_cache_dir()}), or point backbone.model at a local folder holding it.",
        ) from exc


def local_tokenizer(spec: Any) -> Any:
    """For a random-weight build: the tokenizer from a local folder or the Hugging Face cache (never the hub), else a
    MissingTokenizer. Where only config.json is there, transformers builds an empty tokenizer of the config's
    family: that counts as missing too."""
    from transformers import AutoTokenizer

    source = resolve_model_path(spec.model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=spec.revision, local_files_only=True)
    except (OSError, ValueError):
        return MissingTokenizer(spec)
    return tokenizer if tokenizer.vocab_size else MissingTokenizer(spec)


def load_pretrained(model_class: Any, spec: Any) -> tuple[Any, Any]:
    """Tokenizer and pre-trained model (local folder, Hugging Face cache, or the hub when reachable)."""
    from transformers import AutoConfig, AutoTokenizer

    source = resolve_model_path(spec.model)
    offline = _offline_reason(spec, hub=True)
    local_only = offline is not None
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=spec.revision, local_files_only=local_only)
        config = AutoConfig.from_pretrained(source, revision=spec.revision, local_files_only=local_only,
                                            **spec.config_overrides)
        with_dropout(config, spec.dropout)
        model = model_class.from_pretrained(source, revision=spec.revision, config=config, local_files_only=local_only)
    except OSError as exc:
        if Path(source).is_dir():
            _incomplete_folder(spec, source, exc)
        if offline is not None:
            not_here(spec, offline, exc)
        raise BenchError(f"cannot load the {spec.kind} model '{spec.model}'{_at(spec)}: {_first_line(exc)}",
                         field="backbone.model", hint="Check the hub id and revision.") from exc
    except Exception as exc:  # safetensors, torch.load and json raise their own types for a damaged file
        raise BenchError(
            f"could not read the files of '{spec.model}'{_at(spec)}: {_first_line(exc)}",
            field="backbone.model",
            hint="A file is damaged or incomplete: delete it (from the folder, or the model's entry in the Hugging "
            f"Face cache {_cache_dir()}) and download it again.",
        ) from exc
    return tokenizer, model


def with_dropout(config: Any, dropout: float | None) -> Any:
    """backbone.dropout, when set, replaces every dropout probability of the config (GPT-2 and BART names)."""
    if dropout is not None:
        for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "dropout", "attention_dropout"):
            if hasattr(config, name):
                setattr(config, name, dropout)
    return config


def not_here(spec: Any, offline: str, exc: Exception) -> NoReturn:
    """The one paragraph for pre-trained weights that are not on this machine while the hub is out of reach."""
    raise BenchError(
        f"the pre-trained {spec.kind} model '{spec.model}'{_at(spec)} is not on this machine and the Hugging Face "
        f"hub cannot be reached ({offline}).",
        field="backbone.model",
        hint=f"On a machine with network run `{download_command(spec)} --local-dir DIR` (config.json, the weights "
        "model.safetensors or pytorch_model.bin, and the tokenizer files), copy DIR here and set backbone.model: DIR "
        f"in the task; or copy that machine's Hugging Face cache ({_cache_dir()}) here. `pretrained: false` builds "
        "the same shapes with random weights, for timing and memory only.",
    ) from exc


def download_command(spec: Any, *files: str) -> str:
    revision = f" --revision {spec.revision}" if spec.revision else ""
    return " ".join(["hf download", spec.model, *files]) + revision


class MissingTokenizer:
    """Stands in for a tokenizer that is not on this machine (a random-weight build from a shipped config): the
    model builds, trains and decodes token ids (`bench perf language`); the first use of the tokenizer raises the
    one-paragraph error that says what to download."""

    def __init__(self, spec: Any) -> None:
        self._spec = spec

    def missing(self) -> NoReturn:
        spec = self._spec
        raise BenchError(
            f"the tokenizer of '{spec.model}'{_at(spec)} is not on this machine; a `pretrained: false` backbone is "
            "built from its config without the hub, but reading text needs the tokenizer files.",
            field="backbone.model",
            hint=f"Where there is network run `{download_command(spec)} tokenizer.json tokenizer_config.json "
            f"vocab.json merges.txt` (it lands in the Hugging Face cache, {_cache_dir()}), or point backbone.model at "
            "a local folder holding config.json and the tokenizer files.",
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_spec":
            raise AttributeError(name)  # copy, pickle and hasattr probes
        self.missing()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.missing()

    def __len__(self) -> int:
        self.missing()

    def __bool__(self) -> bool:
        return False


def _offline_reason(spec: Any, hub: bool) -> str | None:
    """Why only local files may be read (None: the hub may be asked). A local folder never reaches the hub."""
    from bench.hub import prefer_offline

    if is_local(spec):
        return "a local folder"
    if not hub:
        return "a random-weight build reads local files only"
    return prefer_offline()


def _incomplete_folder(spec: Any, folder: str, exc: Exception) -> NoReturn:
    present = sorted(p.name for p in Path(folder).iterdir())
    raise BenchError(
        f"the folder {folder} (backbone.model '{spec.model}') cannot be loaded: {_first_line(exc)}",
        field="backbone.model",
        hint=f"It holds {', '.join(present) or 'nothing'}; a transformers model folder needs config.json, the "
        f"weights ({' or '.join(WEIGHT_FILES[:2])}; not needed with pretrained: false) and the tokenizer files "
        "(tokenizer.json or vocab.json + merges.txt, tokenizer_config.json), as `hf download <id> --local-dir DIR` "
        "writes them.",
    ) from exc


def _shipped_models() -> list[str]:
    return sorted(json.loads((CONFIGS_DIR / "index.json").read_text())["models"])


def _at(spec: Any) -> str:
    return f" (revision {spec.revision[:7]})" if spec.revision else ""


def _why(offline: str | None) -> str:
    return f" ({offline})" if offline else ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)
