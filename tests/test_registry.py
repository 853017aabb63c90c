"""Discovery of tasks, suites and methods: built-ins, user folders, entry points, did-you-mean errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bench import registry
from bench.errors import BenchError
from bench.method import METHODS, Method


def test_builtin_mini_suite_and_methods() -> None:
    suite, tasks = registry.resolve_tasks("mini")
    assert suite is not None and [t.name for t in tasks] == ["mini/novel_shapes", "mini/counting", "mini/orientation"]
    assert {t.group for t in tasks} == {"natural", "structured", "specialized"}
    methods = registry.load_methods()
    assert {"linear", "full_ft"} <= set(methods)
    assert methods["full_ft"].optimizer == "adamw" and methods["full_ft"].trains_backbone
    assert methods["linear"].optimizer is None and not methods["linear"].trains_backbone


def test_every_builtin_spec_validates() -> None:
    files = registry.spec_files()
    assert files, "no built-in specs found"
    for name, entry in files.items():
        if entry.is_suite:
            registry.resolve_tasks(name)
        else:
            registry.load_task(entry.path, name)


def test_unknown_names_suggest_close_match() -> None:
    with pytest.raises(BenchError, match="unknown method 'ful_ft'.*Did you mean 'full_ft'"):
        registry.get_method("ful_ft")
    with pytest.raises(BenchError, match="unknown task or suite 'mini/novel_shape'.*Did you mean 'mini/novel_shapes'"):
        registry.resolve_tasks("mini/novel_shape")


def test_methods_dir_registers_a_new_method(tmp_path: Path) -> None:
    (tmp_path / "head_and_norms.py").write_text(textwrap.dedent("""\
        from torch import nn
        from bench.method import Method, MethodHParams, register_method

        @register_method("test_norms_only")
        class NormsOnly(Method):
            class HParams(MethodHParams):
                include_final: bool = True

            def attach(self, backbone):
                for name, p in backbone.named_parameters():
                    if "norm" in name:
                        p.requires_grad_(True)
                return backbone
    """))
    methods = registry.load_methods((tmp_path,))
    assert "test_norms_only" in methods
    assert methods["test_norms_only"].source.endswith("head_and_norms.py")
    METHODS.pop("test_norms_only")


def test_broken_method_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(BenchError, match=r"broken\.py.*ModuleNotFoundError"):
        registry.load_methods((tmp_path,))


def test_entry_point_group_registers_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    class FromPlugin(Method):
        """A method shipped by another package."""

        def attach(self, backbone):  # type: ignore[no-untyped-def]
            return backbone

    class FakeEntryPoint:
        name, value = "plugin_method", "plugin:FromPlugin"

        def load(self) -> type[Method]:
            return FromPlugin

    monkeypatch.setattr(registry, "entry_points", lambda group: [FakeEntryPoint()] if group == "bench.methods" else [])
    registry._load_entry_points.cache_clear()
    try:
        methods = registry.load_methods()
        assert methods["plugin_method"] is FromPlugin
        assert FromPlugin.source == "entry point plugin:FromPlugin"
    finally:
        METHODS.pop("plugin_method", None)
        registry._load_entry_points.cache_clear()


def test_duplicate_method_names_are_rejected() -> None:
    from bench.method import register_method

    class Other(Method):
        def attach(self, backbone):  # type: ignore[no-untyped-def]
            return backbone

    registry.load_methods()
    with pytest.raises(BenchError, match="registered twice"):
        register_method("linear")(Other)


def test_a_unique_last_name_part_finds_the_task() -> None:
    assert registry.load_task_by_name("cub").name == "fgvc/cub"
    suite, tasks = registry.resolve_tasks("orientation")
    assert suite is None and tasks[0].name == "mini/orientation"


def test_method_files_import_helper_modules_of_their_folder(tmp_path: Path) -> None:
    """A plug-in folder is a package: method files import helpers beside them relatively."""
    (tmp_path / "_scales.py").write_text("FACTOR = 3\n")
    (tmp_path / "shared.py").write_text("def biases(backbone):\n"
                                        "    return [p for n, p in backbone.named_parameters()\n"
                                        "            if n.endswith('.bias')]\n")
    (tmp_path / "tripled.py").write_text(textwrap.dedent("""\
        from torch import nn
        from bench.method import Method, MethodHParams, register_method
        from ._scales import FACTOR
        from .shared import biases

        class TripledHParams(MethodHParams):
            factor: int = FACTOR

        @register_method("test_tripled")
        class Tripled(Method[TripledHParams]):
            HParams = TripledHParams

            def attach(self, backbone):
                for p in biases(backbone):
                    p.requires_grad_(True)
                return backbone
    """))
    try:
        methods = registry.load_methods((tmp_path,))
        tripled = methods["test_tripled"]
        assert tripled().hp.factor == 3 and tripled.source.endswith("tripled.py")
    finally:
        METHODS.pop("test_tripled", None)


def test_an_absolute_helper_import_gets_a_hint_for_the_relative_form(tmp_path: Path) -> None:
    (tmp_path / "_helpers.py").write_text("X = 1\n")
    (tmp_path / "absolute.py").write_text("from _helpers import X\n")
    with pytest.raises(BenchError, match=r"absolute\.py.*from \._helpers import"):
        registry.load_methods((tmp_path,))


def test_hparams_are_the_methods_own_class() -> None:
    lora = registry.get_method("lora")
    assert type(lora().hp).__name__ == "LoRAHParams" and lora().hp.rank == 8
    with pytest.raises(TypeError, match="takes LoRAHParams"):
        lora(registry.get_method("adapter").HParams())
