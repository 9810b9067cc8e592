"""The import rules of STYLE.md's layout, read from the source with `ast` (every import, including
those inside functions): a selector never imports a service; labeling never imports bugqueue;
common imports neither app; and the shared modules that moved to common/ are imported from there
only."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "config", "labeling", "bugqueue")
ELSEWHERE = ("tests", "benchmarks", ".ci")

# Modules that live in common/ and must not be looked for in labeling again.
MOVED = {
    "labeling.errors", "labeling.timestamps", "labeling.request_body", "labeling.middleware",
    *(f"labeling.api.{m}" for m in (
        "errors", "pagination", "negotiation", "batch", "base", "inputs", "parsers", "json_body", "schema",
        "views_schema",
    )),
}

# Flat modules that became packages or moved house; the old names must not come back.
RENAMED = {
    **{f"labeling.selectors_{m}": f"labeling.selectors.{m}"
       for m in ("accounts", "blind", "export", "feedback", "quality", "queue")},
    **{f"labeling.views_{m}": f"labeling.views.{m}" for m in ("export", "feedback", "quality", "queue")},
    "labeling.bulkio": "common.db",
    "labeling.consensus": "labeling.stats.consensus",
    "labeling.survival": "labeling.stats.survival",
    "labeling.receivers_feedback": "labeling.receivers",
    "bugqueue.datasets_models": "bugqueue.models.datasets",
    "bugqueue.selectors_datasets": "bugqueue.selectors.datasets",
    "bugqueue.views_datasets": "bugqueue.views.datasets",
    **{f"tests.factories{m}": "tests.labeling.factories"
       for m in ("", "_export", "_feedback", "_quality", "_queue")},
    "tests.factories_bugqueue": "tests.bugqueue.factories",
    "tests.factories_input": "tests.input_world",
}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Every module `path` imports, as absolute dotted names; `from a import b` yields a and a.b
    (b may be a module)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def python_files(*tops):
    for top in tops:
        yield from sorted(p for p in (ROOT / top).rglob("*.py") if "migrations" not in p.parts)


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def is_selector(name: str) -> bool:
    parts = name.split(".")
    return parts[0] in ("labeling", "bugqueue") and len(parts) > 1 and parts[1].startswith("selectors")


def is_service(name: str) -> bool:
    parts = name.split(".")
    return parts[0] in ("labeling", "bugqueue") and len(parts) > 1 and parts[1] == "services"


def violations(files, root: Path = ROOT) -> list[str]:
    out = []
    for path in files:
        name = module_name(path, root)
        for imported in sorted(imports_of(path, root)):
            if is_selector(name) and is_service(imported):
                out.append(f"{name}: a selector imports a service ({imported})")
            if under(name, "labeling") and under(imported, "bugqueue"):
                out.append(f"{name}: labeling imports bugqueue ({imported})")
            if under(name, "common") and (under(imported, "labeling") or under(imported, "bugqueue")):
                out.append(f"{name}: common imports an app ({imported})")
            if any(under(imported, old) for old in MOVED):
                out.append(f"{name}: imports {imported}, which lives in common/ now")
            for old, new in RENAMED.items():
                if under(imported, old):
                    out.append(f"{name}: imports {imported}, which moved to {new}")
    return out


def test_the_tree_keeps_the_import_rules():
    files = list(python_files(*PACKAGES, *ELSEWHERE))
    assert len(files) > 100 and any(is_selector(module_name(p)) for p in files)
    assert violations(files) == []


def test_the_moved_modules_are_gone():
    left = [m for m in (*MOVED, *RENAMED) if (ROOT / (m.replace(".", "/") + ".py")).exists()]
    assert left == []


@pytest.mark.parametrize("module, source, expected", [
    ("labeling/selectors_x.py", "from labeling.services.feedback_rollup import HUMAN_CHANNEL",
     "a selector imports a service"),
    ("bugqueue/selectors_x.py", "def f():\n    from .services import datasets\n", "a selector imports a service"),
    ("labeling/services/x.py", "import bugqueue.models", "labeling imports bugqueue"),
    ("common/api/x.py", "from labeling.models import Item", "common imports an app"),
    ("bugqueue/api/x.py", "from labeling.api.pagination import DefaultPagination", "lives in common/ now"),
    ("tests/x.py", "from labeling import errors", "lives in common/ now"),
    ("labeling/views/x.py", "from labeling import selectors_quality", "moved to labeling.selectors.quality"),
    ("tests/x.py", "from tests.factories_queue import annotators", "moved to tests.labeling.factories"),
])
def test_each_rule_catches_a_violating_import(tmp_path, module, source, expected):
    path = tmp_path / module
    path.parent.mkdir(parents=True)
    path.write_text(source)
    found = violations([path], root=tmp_path)
    assert found and all(expected in f for f in found), found


def test_a_clean_import_passes(tmp_path):
    path = tmp_path / "labeling" / "selectors_x.py"
    path.parent.mkdir()
    path.write_text("from common.errors import NotFound\nfrom .models import Item\nfrom . import selectors\n")
    assert imports_of(path, tmp_path) >= {"common.errors.NotFound", "labeling.models.Item", "labeling.selectors"}
    assert violations([path], root=tmp_path) == []
