"""The package layout keeps its promises: no import cycles between bench modules (imports inside functions
count too), and no module outside the modality implementations branches on the task kind."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bench"
# Only these may know vision from language (DESIGN: one loop, the differences behind bench.train.modality).
# bench.prompting holds the prompt/prefix methods' helpers, which initialise as each family's reference code does.
KIND_AWARE = {"bench.train.vision", "bench.train.text", "bench.spec", "bench.prompting"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))
            if "evaluate_modules" not in p.parts}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    graph: dict[str, set[str]] = {name: set() for name in found}
    for name, tree in found.items():
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in found else node.module
                           for alias in node.names]
            graph[name] |= {t for t in targets if t in found and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_bench_modules() -> None:
    graph = import_graph()
    assert len(graph) > 80 and graph["bench.train.loop"]  # the scan sees the package and its imports
    assert cycles(graph) == []


def kind_branches(tree: ast.Module) -> list[int]:
    """Lines that test the task kind: isinstance(x, TaskSpec | TextTaskSpec) or a comparison with the literal
    'vision' / 'language' / 'gpt2' / 'bart' / 'vit'."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
            names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
            if names & {"TaskSpec", "TextTaskSpec", "ViTBackbone", "LanguageBackbone", "GPT2Backbone",
                        "BartBackbone"}:
                lines.append(node.lineno)
        if isinstance(node, ast.Compare):
            literals = {c.value for c in [node.left, *node.comparators] if isinstance(c, ast.Constant)}
            if literals & {"vision", "language", "gpt2", "bart", "vit"}:
                lines.append(node.lineno)
    return lines


def test_only_the_modality_implementations_branch_on_the_task_kind() -> None:
    offenders = {name: lines for name, tree in modules().items()
                 if name not in KIND_AWARE and not name.startswith("bench.backbones")
                 and (lines := kind_branches(tree))}
    assert offenders == {}


def test_the_kind_scan_sees_a_branch() -> None:
    tree = ast.parse("if isinstance(task, TextTaskSpec):\n    pass\nif task.modality == 'vision':\n    pass\n")
    assert kind_branches(tree) == [1, 3]


def test_the_architecture_page_names_every_module_and_package() -> None:
    """docs/architecture.md matches the tree: its module table names every top-level module and package of bench/,
    its "Inside the packages" tables every module of each package, and nothing it names is gone."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    table = page[page.index("## Modules"):page.index("## Inside the packages")]
    inside = page[page.index("## Inside the packages"):]
    bench = ROOT / "bench"
    packages = [p for p in bench.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))]
    names = [f"bench/{p.name}" for p in bench.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    names += [f"bench/{p.name}/" for p in packages]
    missing = [name for name in sorted(names) if f"`{name}`" not in table]
    assert not missing, f"the module table of docs/architecture.md does not name: {missing}"
    modules = [f"bench/{p.relative_to(bench).as_posix()}" for package in packages for p in package.glob("*.py")
               if p.name not in ("__init__.py", "__main__.py")]
    missing = [name for name in sorted(modules) if f"`{name}`" not in inside]
    assert not missing, f"'Inside the packages' in docs/architecture.md does not name: {missing}"
    named = {m for m in re.findall(r"`(bench/[\w/.]+)`", page)}
    stale = [name for name in sorted(named) if not (ROOT / name).exists() and "_builtin" not in name]  # wheel only
    assert not stale, f"docs/architecture.md names what no longer exists: {stale}"


def test_the_project_never_points_to_files_outside_itself() -> None:
    """Docstrings, comments and docs cite the project's own docs/, not notes kept outside the repository."""
    outside = re.compile(r"\breference/[a-z-]+\.md|\bDESIGN\.md|\bSTYLE\.md|\.\./shared/")
    found = []
    for folder in ("bench", "methods", "tasks", "tests", "scripts", "docs"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".md", ".yaml") and path.is_file():
                found += [f"{path.relative_to(ROOT)}:{i}" for i, line in enumerate(path.read_text().splitlines(), 1)
                          if outside.search(line) and path.name != "test_architecture.py"]
    readme = (ROOT / "README.md").read_text().splitlines()
    found += [f"README.md:{i}" for i, line in enumerate(readme, 1) if outside.search(line)]
    assert not found, found
