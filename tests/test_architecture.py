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
    "labeling.errors",
    "labeling.timestamps",
    "labeling.request_body",
    "labeling.middleware",
    *(
        f"labeling.api.{m}"
        for m in (
            "errors",
            "pagination",
            "negotiation",
            "batch",
            "base",
            "inputs",
            "parsers",
            "json_body",
            "schema",
            "views_schema",
        )
    ),
}

# Flat modules that became packages or moved house; the old names must not come back.
RENAMED = {
    **{
        f"labeling.selectors_{m}": f"labeling.selectors.{m}"
        for m in ("accounts", "blind", "export", "feedback", "quality", "queue")
    },
    **{f"labeling.views_{m}": f"labeling.views.{m}" for m in ("export", "feedback", "quality", "queue")},
    "labeling.bulkio": "common.db",
    "labeling.consensus": "labeling.stats.consensus",
    "labeling.survival": "labeling.stats.survival",
    "labeling.receivers_feedback": "labeling.receivers",
    "bugqueue.datasets_models": "bugqueue.models.datasets",
    "bugqueue.selectors_datasets": "bugqueue.selectors.datasets",
    "bugqueue.views_datasets": "bugqueue.views.datasets",
    **{f"tests.factories{m}": "tests.labeling.factories" for m in ("", "_export", "_feedback", "_quality", "_queue")},
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


@pytest.mark.parametrize(
    "module, source, expected",
    [
        (
            "labeling/selectors_x.py",
            "from labeling.services.feedback_rollup import HUMAN_CHANNEL",
            "a selector imports a service",
        ),
        ("bugqueue/selectors_x.py", "def f():\n    from .services import datasets\n", "a selector imports a service"),
        ("labeling/services/x.py", "import bugqueue.models", "labeling imports bugqueue"),
        ("common/api/x.py", "from labeling.models import Item", "common imports an app"),
        ("bugqueue/api/x.py", "from labeling.api.pagination import DefaultPagination", "lives in common/ now"),
        ("tests/x.py", "from labeling import errors", "lives in common/ now"),
        ("labeling/views/x.py", "from labeling import selectors_quality", "moved to labeling.selectors.quality"),
        ("tests/x.py", "from tests.factories_queue import annotators", "moved to tests.labeling.factories"),
    ],
)
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


# --- raw SQL machinery and long modules ----------------------------------------------------------


MAX_LINES = 400


def app_modules(*tops, root: Path = ROOT):
    """Every app module under `tops` except migrations and common/db (the home of raw SQL machinery)."""
    for top in tops:
        for path in sorted((root / top).rglob("*.py")):
            if "migrations" in path.parts or module_name(path, root).startswith("common.db"):
                continue
            yield path


def _raw_sql_machinery(node) -> str | None:
    """What `node` does that only common/db may: hold a cursor, execute on one, or run Model.objects.raw."""
    if isinstance(node, ast.Attribute):
        if node.attr == "cursor" and isinstance(node.value, ast.Name) and node.value.id == "connection":
            return "connection.cursor"
        if node.attr == "execute" and isinstance(node.value, ast.Name) and node.value.id in ("cursor", "cur"):
            return f"{node.value.id}.execute"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        on_connection = isinstance(node.func.value, ast.Name) and node.func.value.id == "connection"
        if node.func.attr == "cursor" and not on_connection:  # (connection.cursor() is named above)
            return ".cursor()"
        if node.func.attr == "raw" and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "objects":
            return ".objects.raw()"
    return None


def raw_sql_violations(files, root: Path = ROOT) -> list[str]:
    out = []
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        name = module_name(path, root)
        found = sorted({what for node in ast.walk(tree) if (what := _raw_sql_machinery(node))})
        out.extend(f"{name}: {what} outside common/db" for what in found)
        uses_sql = any(under(imported, "common.db.sql") for imported in imports_of(path, root))
        if uses_sql and "Raw SQL:" not in (ast.get_docstring(tree) or ""):
            out.append(f"{name}: imports common.db.sql without a 'Raw SQL:' paragraph in its docstring")
    return out


def long_module_violations(files, root: Path = ROOT, limit: int = MAX_LINES) -> list[str]:
    out = []
    for path in files:
        source = path.read_text()
        lines = len(source.splitlines())
        if lines > limit and "Long because" not in (ast.get_docstring(ast.parse(source)) or ""):
            out.append(f"{module_name(path, root)}: {lines} lines, and no 'Long because' in its docstring")
    return out


def _offenders(found: list[str], rule: str) -> set[str]:
    if rule == "raw_sql_docstring":
        found = [f for f in found if "Raw SQL:" in f]
    elif rule == "raw_sql_machinery":
        found = [f for f in found if "outside common/db" in f]
    return {f.split(":")[0] for f in found}


@pytest.mark.parametrize("rule", ["raw_sql_machinery", "raw_sql_docstring"])
def test_the_tree_keeps_raw_sql_in_common_db(rule):
    files = list(app_modules(*PACKAGES))
    assert any(module_name(p) == "labeling.services.ground_truth" for p in files)
    assert not any(under(module_name(p), "common.db") for p in files)
    assert sorted(_offenders(raw_sql_violations(files), rule)) == []


def test_no_app_module_is_long_without_saying_why():
    files = list(app_modules("labeling", "bugqueue", "common"))
    assert long_module_violations(files) == []


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from django.db import connection\nwith connection.cursor() as c:\n    pass\n", "connection.cursor"),
        ("def f(conn):\n    return conn.cursor()\n", ".cursor()"),
        ("def f(cursor):\n    cursor.execute('SELECT 1')\n", "cursor.execute"),
        ("def f(cur):\n    cur.execute('SELECT 1')\n", "cur.execute"),
        ("from labeling.models import Project\nrows = Project.objects.raw('SELECT * FROM p')\n", ".objects.raw()"),
        ('"""Reads."""\nfrom common.db.sql import fetchall\n', "without a 'Raw SQL:' paragraph"),
        ('"""Reads."""\nfrom common.db import sql\n', "without a 'Raw SQL:' paragraph"),
    ],
)
def test_the_raw_sql_rules_catch_a_violation(tmp_path, source, expected):
    path = tmp_path / "labeling" / "services" / "x.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    found = raw_sql_violations([path], root=tmp_path)
    assert found and all(expected in f for f in found), found


def test_raw_sql_through_common_db_with_its_reason_passes(tmp_path):
    path = tmp_path / "labeling" / "services" / "x.py"
    path.parent.mkdir(parents=True)
    path.write_text(
        '"""Counters.\n\nRaw SQL: UPDATE ... RETURNING, which the ORM cannot say."""\n'
        "from common.db.sql import fetchone\n\ndef f():\n    return fetchone('SELECT 1')\n"
    )
    assert raw_sql_violations([path], root=tmp_path) == []


def test_common_db_and_migrations_may_hold_cursors(tmp_path):
    for module in ("common/db/x.py", "labeling/migrations/0001_x.py"):
        path = tmp_path / module
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("from django.db import connection\nconnection.cursor().execute('SELECT 1')\n")
    assert list(app_modules("common", "labeling", root=tmp_path)) == []


@pytest.mark.parametrize(
    "docstring, long_, ok",
    [
        ('"""Short."""', False, True),
        ('"""Many rules."""', True, False),
        ('"""Many rules.\n\nLong because the rules share one transaction."""', True, True),
    ],
)
def test_the_long_module_rule(tmp_path, docstring, long_, ok):
    path = tmp_path / "labeling" / "x.py"
    path.parent.mkdir(parents=True)
    body = "\n".join(f"X{i} = {i}" for i in range(MAX_LINES + 10 if long_ else 10))
    path.write_text(docstring + "\n" + body + "\n")
    found = long_module_violations([path], root=tmp_path)
    assert (found == []) is ok, found
