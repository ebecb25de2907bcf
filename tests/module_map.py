"""docs/modules.md: every module of core/, connectors/ and bridge/ with the first line of its docstring.

The map is generated, so it cannot drift: ``tests/test_module_map.py`` fails when it is stale, and
``python -m tests.module_map`` writes it again.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAP = ROOT / "docs" / "modules.md"
PACKAGES = ("core", "connectors", "bridge")
HEADER = """# Module map

Generated from each module's docstring by `python -m tests.module_map` (a test fails when it is
stale). Dependencies point one way: bridge → connectors → core (`tests/test_architecture.py`).
"""


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py")
                  if "versions" not in p.parts and not (p.name == "__init__.py" and p.stat().st_size == 0))


def _summary(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.strip().split("\n\n")[0].split())  # the first paragraph, on one line
    return first.replace("``", "`").replace("|", "\\|") or "(no docstring)"


def render() -> str:
    parts = [HEADER]
    for package in PACKAGES:
        parts.append(f"\n## {package}/\n\n| module | what it holds |\n|---|---|\n")
        for path in _modules(package):
            name = path.relative_to(ROOT).as_posix()
            parts.append(f"| `{name}` | {_summary(path)} |\n")
    return "".join(parts)


if __name__ == "__main__":
    MAP.write_text(render(), encoding="utf-8")
    print(f"wrote {MAP.relative_to(ROOT)}")
