"""The one-way flow of the code (README "Layout"): lower layers never import upper ones, the cost model
imports no I/O library, and modules stay small. Read from the source with `ast`, nothing is imported."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "queries", "collectors", "costmodel", "placement", "experiments")
# what each package may import of the project (its own modules always)
ALLOWED = {"common": set(), "queries": {"common"}, "collectors": {"common", "queries"},
           "costmodel": {"common", "queries", "collectors"},
           "placement": {"common", "queries", "collectors", "costmodel"},
           "experiments": {"common", "queries", "collectors", "costmodel", "placement"}}
IO_LIBRARIES = {"requests", "subprocess", "paramiko", "pyflink", "socket", "psutil"}
PURE_COLLECTOR_MODULES = {"collectors.profiles"}  # what the cost model may use of collectors/


def _modules(pkg: str) -> dict[str, Path]:
    return {".".join(f.relative_to(ROOT).with_suffix("").parts): f for f in (ROOT / pkg).rglob("*.py")}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


@pytest.mark.parametrize("pkg", PACKAGES)
def test_a_package_imports_only_the_layers_below_it(pkg):
    wrong = {f"{m} imports {i}" for m, f in _modules(pkg).items() for i in _imports(f)
             if i.split(".")[0] in PACKAGES and i.split(".")[0] not in ALLOWED[pkg] | {pkg}}
    assert not wrong, sorted(wrong)


def test_the_cost_model_imports_no_io_library_not_even_through_the_project():
    seen, todo, reached = set(), list(_modules("costmodel")), set()
    every = {m: f for pkg in PACKAGES for m, f in _modules(pkg).items()}
    while todo:
        m = todo.pop()
        if m in seen or m not in every:
            continue
        seen.add(m)
        for i in _imports(every[m]):
            reached.add(i.split(".")[0])
            if i in every:
                todo.append(i)
    assert not reached & IO_LIBRARIES, sorted(reached & IO_LIBRARIES)
    assert {m for m in seen if m.startswith("collectors.")} <= PURE_COLLECTOR_MODULES


def test_modules_stay_small():
    sizes = {m: len(f.read_text().splitlines()) for pkg in PACKAGES for m, f in _modules(pkg).items()}
    assert not {m: n for m, n in sizes.items() if n > 400}
    assert not {m: n for m, n in sizes.items() if m.startswith("experiments.cli") and n > 250}
