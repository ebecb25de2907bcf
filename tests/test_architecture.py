"""Layering rules, checked on the source with ``ast``:

* core/ is pure: no web framework, queue, HTTP client or platform SDK, and nothing from
  connectors/ or bridge/;
* connectors/ never reach into bridge/, and only a connector's ``client.py`` talks HTTP;
* every public module declares ``__all__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE_FORBIDDEN = ("flask", "werkzeug", "rq", "redis", "httpx", "hubspot", "woocommerce", "requests",
                  "connectors", "bridge")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[str]:
    """Absolute names of every module ``source`` imports (relative imports resolved against ``module``)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target:
                names.append(target)
            # `from pkg import sub` may import a submodule: count pkg.sub too
            names.extend(".".join(filter(None, (target, alias.name))) for alias in node.names if alias.name != "*")
    return names


def _hits(names: list[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted({n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden)})


def _py_files(folder: str) -> list[Path]:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, f"no python files under {folder}/"
    return files


def _imports_of(path: Path) -> list[str]:
    return imported_modules(path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py")


# --------------------------------------------------------------------------- the scanner itself


@pytest.mark.parametrize(
    "source, module, is_package, forbidden, expected",
    [
        pytest.param("import flask", "core.x", False, ("flask",), ["flask"], id="import"),
        pytest.param("import redis.client as rc", "core.x", False, ("redis",), ["redis.client"], id="dotted-import"),
        pytest.param("from werkzeug.exceptions import HTTPException", "core.x", False, ("werkzeug",),
                     ["werkzeug.exceptions", "werkzeug.exceptions.HTTPException"], id="from-import"),
        pytest.param("def f():\n    import httpx\n", "core.x", False, ("httpx",), ["httpx"], id="nested-import"),
        pytest.param("from ..bridge import app", "connectors.shopify.x", False, ("bridge",), [],
                     id="relative-level2-stays-in-connectors"),
        pytest.param("from ... import bridge", "connectors.shopify.x", False, ("bridge",), ["bridge"],
                     id="relative-level3-reaches-root"),
        pytest.param("from connectors import shopify", "core.x", False, ("connectors",),
                     ["connectors", "connectors.shopify"], id="from-package"),
        pytest.param("import rqueue\nimport requests_toolbelt", "core.x", False, ("rq", "requests"), [],
                     id="prefix-is-not-a-match"),
        pytest.param("from . import engine", "core.flows", True, ("core",), ["core.flows", "core.flows.engine"],
                     id="relative-in-package-init"),
    ],
)
def test_import_scanner(source, module, is_package, forbidden, expected):
    assert _hits(imported_modules(source, module, is_package), forbidden) == expected


# --------------------------------------------------------------------------- layering


def test_core_imports_no_framework_client_or_outer_layer():
    offenders = {}
    for path in _py_files("core"):
        hits = _hits(_imports_of(path), CORE_FORBIDDEN)
        if hits:
            offenders[str(path.relative_to(ROOT))] = hits
    assert not offenders, f"core/ must stay pure; forbidden imports: {offenders}"


def test_connectors_do_not_import_bridge():
    offenders = {}
    for path in _py_files("connectors"):
        hits = _hits(_imports_of(path), ("bridge",))
        if hits:
            offenders[str(path.relative_to(ROOT))] = hits
    assert not offenders, f"connectors/ must not depend on bridge/: {offenders}"


def _is_connector_client(path: Path) -> bool:
    rel = path.relative_to(ROOT / "connectors")
    return len(rel.parts) == 2 and rel.name == "client.py"


def test_only_connector_clients_import_httpx():
    users = [path for path in _py_files("connectors") if _hits(_imports_of(path), ("httpx",))]
    offenders = [str(p.relative_to(ROOT)) for p in users if not _is_connector_client(p)]
    assert not offenders, f"httpx is for connectors/*/client.py only; also imported by: {offenders}"
    assert users, "expected at least one connectors/*/client.py to use httpx (is the scan looking at the code?)"


# --------------------------------------------------------------------------- __all__


def _declares_all(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
    return False


def _public_modules() -> list[Path]:
    """Modules others import; Alembic's revision scripts are run by Alembic, imported by no one."""
    return [p for folder in ("core", "connectors", "bridge") for p in _py_files(folder)
            if not p.name.startswith("_") and "migrations" not in p.parts]


@pytest.mark.parametrize(
    "source, expected",
    [
        pytest.param('__all__ = ["a"]\n', True, id="assign"),
        pytest.param('__all__: list[str] = []\n', True, id="annotated"),
        pytest.param('"""doc"""\nx = 1\n', False, id="missing"),
        pytest.param('def f():\n    __all__ = []\n', False, id="not-module-level"),
        pytest.param('ALL = ["a"]\n', False, id="other-name"),
    ],
)
def test_declares_all_detector(tmp_path, source, expected):
    path = tmp_path / "mod.py"
    path.write_text(source, encoding="utf-8")
    assert _declares_all(path) is expected


def test_every_public_module_declares_all():
    modules = _public_modules()
    assert len(modules) > 20
    offenders = [str(p.relative_to(ROOT)) for p in modules if not _declares_all(p)]
    assert not offenders, f"public modules without __all__: {offenders}"
