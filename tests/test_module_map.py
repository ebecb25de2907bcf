"""docs/modules.md is the generated map of the code; it must match the code as it is."""

from tests.module_map import MAP, render


def test_the_module_map_is_current():
    assert MAP.exists(), "docs/modules.md is missing: run python -m tests.module_map"
    assert MAP.read_text(encoding="utf-8") == render(), "docs/modules.md is stale: run python -m tests.module_map"
