"""`peft:` method texts: a small parser for `Name(key=value, ...)` (never eval) and the canonical form of a peft config.

The text is read without evaluating anything: integers, floats, strings (quoted, or bare words such as q_proj or
mlp.c_proj), true / false, null and [lists]. Only the config classes in PEFT_CONFIGS are accepted. A config is
canonicalised through peft itself (keys sorted, sets sorted, values equal to peft's defaults dropped), so one config
written two ways is one method, stored under `peft-<kind>-<hash of the canonical text>`. This module imports neither
torch nor peft at import time (the registry imports it); peft is imported when a config is checked.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import hashlib
import re
from functools import cache
from typing import Any

from bench.errors import BenchError, did_you_mean

PREFIX = "peft:"
# The config classes tested on the ViT, GPT-2 and BART backbones (tests/test_peft_methods.py). Configs that keep
# state shared between layers (VeRA, VB-LoRA) or that need peft's model wrappers (prompt learning) cannot be injected
# into a backbone; some tuners take only nn.Linear, not GPT-2's Conv1D, and say so when a run is planned.
PEFT_CONFIGS = ("LoraConfig", "IA3Config", "LoHaConfig", "LoKrConfig", "OFTConfig", "HRAConfig", "FourierFTConfig",
                "LNTuningConfig")
# PeftConfig's own fields: how peft saves, loads and wraps a model, not what its adapters compute.
NOT_ADAPTER_FIELDS = ("task_type", "peft_type", "auto_mapping", "peft_version", "base_model_name_or_path", "revision",
                      "inference_mode")
STORED_NAME = re.compile(r"peft-[a-z0-9]+-[0-9a-f]{8}")
SYNTAX_HINT = ("Write peft:ConfigName(key=value, ...), e.g. "
               "peft:LoraConfig(r=8, lora_alpha=16, target_modules=[q_proj, v_proj]); values are numbers, true / "
               "false, null, strings (quoted, or plain words such as q_proj) and [lists]; docs/methods.md, "
               "\"HF peft configs\".")

Value = bool | int | float | str | None | list[Any]


def is_peft_method(name: str) -> bool:
    """A `peft:` config text, or the name runs of one are stored under (checked without importing peft)."""
    return name.startswith(PREFIX) or STORED_NAME.fullmatch(name) is not None


# ---------------------------------------------------------------- reading `Name(key=value, ...)` (no eval)

_TOKEN = re.compile(r"""\s*(?:
    (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.\-]))
  | (?P<word>[A-Za-z_][\w.\-]*)
  | (?P<punct>[()\[\],=])
)""", re.VERBOSE)
_BARE = re.compile(r"[A-Za-z_][\w.\-]*")
_KEYWORDS: dict[str, Value] = {"true": True, "false": False, "null": None, "none": None}


@dataclasses.dataclass(frozen=True)
class _Token:
    kind: str  # string, number, word, punct, end
    text: str
    position: int


def _tokens(text: str, where: dict[str, Any]) -> list[_Token]:
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None or match.lastgroup is None:
            start = len(text) - len(text[position:].lstrip())
            raise _syntax_error(text, f"unexpected character {text[start]!r}", start, where)
        tokens.append(_Token(match.lastgroup, match.group(match.lastgroup), match.start(match.lastgroup)))
        position = match.end()
    return [*tokens, _Token("end", "", len(text))]


def _syntax_error(text: str, what: str, position: int, where: dict[str, Any]) -> BenchError:
    return BenchError(f"cannot read the peft config '{PREFIX}{text}': {what} at character {position + 1}.",
                      hint=SYNTAX_HINT, **where)


class _Parser:
    """Recursive descent over `Name(key=value, ...)`; values are literals and lists, nothing is evaluated."""

    def __init__(self, text: str, where: dict[str, Any]) -> None:
        self.text, self.where = text, where
        self.tokens = _tokens(text, where)
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self, kind: str, text: str | None = None, wanted: str = "") -> _Token:
        token = self.peek()
        if token.kind != kind or (text is not None and token.text != text):
            found = "the end" if token.kind == "end" else repr(token.text)
            raise _syntax_error(self.text, f"expected {wanted or repr(text)}, found {found}", token.position,
                                self.where)
        self.index += 1
        return token

    def call(self) -> tuple[str, dict[str, Value]]:
        name = self.take("word", wanted="a peft config class name such as LoraConfig").text
        values: dict[str, Value] = {}
        if self.peek().kind != "end":
            self.take("punct", "(")
            while not (self.peek().kind == "punct" and self.peek().text == ")"):
                key = self.take("word", wanted="a field name")
                if key.text in values:
                    raise _syntax_error(self.text, f"'{key.text}' is given twice", key.position, self.where)
                self.take("punct", "=")
                values[key.text] = self.value()
                if not self.optional(","):
                    break
            self.take("punct", ")")
        self.take("end", wanted="the end of the config")
        return name, values

    def value(self) -> Value:
        token = self.peek()
        if token.kind == "punct" and token.text == "[":
            self.index += 1
            items: list[Value] = []
            while not (self.peek().kind == "punct" and self.peek().text == "]"):
                items.append(self.value())
                if not self.optional(","):
                    break
            self.take("punct", "]")
            return items
        self.index += 1
        if token.kind == "string":
            return re.sub(r"\\(.)", r"\1", token.text[1:-1])
        if token.kind == "number":
            number = float(token.text)
            return int(token.text) if re.fullmatch(r"[-+]?\d+", token.text) else number
        if token.kind == "word":
            return _KEYWORDS.get(token.text.lower(), token.text)
        found = "the end" if token.kind == "end" else repr(token.text)
        raise _syntax_error(self.text, f"expected a value, found {found}", token.position, self.where)

    def optional(self, text: str) -> bool:
        if self.peek().kind == "punct" and self.peek().text == text:
            self.index += 1
            return True
        return False


def parse(text: str, where: dict[str, Any] | None = None) -> tuple[str, dict[str, Value]]:
    """'LoraConfig(r=8, target_modules=[qkv])' -> ('LoraConfig', {'r': 8, 'target_modules': ['qkv']})."""
    return _Parser(text.removeprefix(PREFIX), where or {"field": "--method"}).call()


def render(value: Value) -> str:
    """A value as the canonical text writes it; `parse` reads it back unchanged."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(render(item) for item in value) + "]"
    if _BARE.fullmatch(value) and value.lower() not in _KEYWORDS:
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ---------------------------------------------------------------- canonical configs


@dataclasses.dataclass(frozen=True)
class PeftSpec:
    """A checked peft config: its class and the values that differ from peft's defaults, in canonical form."""

    config_class: str
    values: tuple[tuple[str, Value], ...]

    @property
    def text(self) -> str:
        """'LoraConfig(lora_alpha=16,r=8,target_modules=[q_proj,v_proj])': keys sorted, no spaces."""
        return f"{self.config_class}({','.join(f'{k}={render(v)}' for k, v in self.values)})"

    @property
    def name(self) -> str:
        """The method name its runs are stored and shown under: 'peft-lora-1f2e3d4c' (a folder name, so a hash)."""
        kind = self.config_class.lower().removesuffix("config")
        return f"peft-{kind}-{hashlib.sha256(self.text.encode()).hexdigest()[:8]}"

    def build(self) -> Any:
        """A fresh peft config object (peft mutates its config while injecting, e.g. GPT-2's fan_in_fan_out)."""
        return _config_class(self.config_class)(**copy.deepcopy(dict(self.values)))


def require_peft() -> Any:
    try:
        import peft
    except ImportError as exc:
        raise BenchError("`peft:` methods run HF peft's own adapters, and peft is not installed.",
                         field="--method", hint="pip install 'peft-bench[peft]' (or pip install peft).") from exc
    return peft


def _config_class(name: str, where: dict[str, Any] | None = None) -> Any:
    peft = require_peft()
    if name not in PEFT_CONFIGS:
        other = isinstance(getattr(peft, name, None), type)
        why = ("is not among the peft configs bench injects into a backbone" if other
               else "is not a peft config class")
        raise BenchError(f"'{name}' {why}.{did_you_mean(name, PEFT_CONFIGS)}", **(where or {"field": "--method"}),
                         hint="Prompt-learning configs (prefix, prompt tuning) need peft's model wrappers: use bench's "
                         "own prefix and prompt_tuning methods; configs that share state between layers (VeRA, "
                         "VB-LoRA) cannot be injected.")
    return getattr(peft, name)


@cache
def resolve(text: str, field: str = "--method", file: str | None = None) -> PeftSpec:
    """Parse and check a `peft:` text through peft's own config class; the canonical spec. Raises BenchError
    (naming `field` and `file`) for bad syntax, a config class not in PEFT_CONFIGS, unknown fields and values peft
    refuses."""
    where: dict[str, Any] = {"field": field, "file": file}
    name, given = parse(text, where)
    cls = _config_class(name, where)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in given:
        if key in NOT_ADAPTER_FIELDS:
            raise BenchError(f"{name} field '{key}' is about how peft saves, loads or wraps a model, not about what "
                             "its adapters compute.", **where, hint="Leave it out: bench injects the adapters into "
                             "the backbone and trains them itself.")
        if key not in fields:
            adapter_fields = [f for f in fields if f not in NOT_ADAPTER_FIELDS]
            raise BenchError(f"{name} has no field '{key}'.{did_you_mean(key, adapter_fields)}", **where,
                             hint=f"See peft's {name} documentation for its fields.")
    try:
        config = cls(**given)
    except (TypeError, ValueError) as exc:
        raise BenchError(f"peft refuses {PREFIX}{text.removeprefix(PREFIX)}: {first_line(exc)}", **where,
                         hint=f"Fix the value; see peft's {name} documentation.") from exc
    values = []
    for key in sorted(given):
        default = _default(fields[key])
        value = _plain(getattr(config, key), given[key], default)
        if default is dataclasses.MISSING or not _same(value, _plain(default, default, default)):
            values.append((key, value))
    return PeftSpec(name, tuple(values))


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _plain(value: Any, given: Value, default: Any) -> Value:
    """A config value after peft's own normalisation, as the parser's types: sets sorted (peft keeps target_modules
    as a set), enums by value, a number in the type of the field's default (16.0 for an int field reads 16). A
    value that has no such form keeps what the user wrote."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, set | frozenset):
        value = sorted(value, key=repr)
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [_plain(item, item, None) for item in value] if all(_literal(i) for i in value) else given
    if isinstance(value, float) and isinstance(default, int) and not isinstance(default, bool) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(default, float):
        return float(value)
    return value if _literal(value) else given


def _literal(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str) or (
        isinstance(value, list) and all(_literal(item) for item in value))


def _same(a: Value, b: Value) -> bool:
    return type(a) is type(b) and render(a) == render(b)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:400] if text else type(exc).__name__
