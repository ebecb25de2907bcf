"""Template files: one YAML file per template, every language in it; every broken rule is reported
with its file, language and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import TemplateError
from core.template_files import check_paths, load_folder, load_template_file, merge_catalogues
from core.templates import Category, ParameterFormat, TemplateStatus, default_catalogue

FILES = Path(__file__).resolve().parent.parent / "fixtures" / "templates"
ROOT = Path(__file__).resolve().parent.parent.parent


def test_a_good_file_gives_one_template_per_language():
    f = load_template_file((FILES / "good" / "winter_sale.yaml").read_text(), "winter_sale.yaml")
    assert (f.name, f.category, f.parameter_format) == ("winter_sale", Category.MARKETING, ParameterFormat.NAMED)
    assert [t.language for t in f.templates] == ["en_US", "es"]
    en = f.templates[0]
    assert en.header_text == "Winter sale, {{first_name}}" and en.status is TemplateStatus.PENDING
    assert [b.payload for b in en.buttons] == ["sale_show", "sale_later"]
    found, issues = check_paths([FILES / "good" / "winter_sale.yaml"])
    assert issues == [] and len(found) == 2


def test_every_problem_is_reported_with_file_language_and_field():
    _found, issues = check_paths([FILES / "broken_promo.yaml"])
    where = str(FILES / "broken_promo.yaml")
    assert [str(p) for p in issues] == [
        f"{where}: en_US: header is 73 characters, the limit is 60",
        f"{where}: en_US: body positional variables must be {{{{1}}}}, {{{{2}}}}, ... in order; got {{{{1}}}}, {{{{3}}}}",
        f"{where}: en_US: buttons: quick_reply buttons must be grouped together",
        f"{where}: en_US: examples: no example for '3', 'button_1'",
        f"{where}: de: variables ['1', '2'] differ from en_US's ['1', '3', 'button_1']",
    ]


@pytest.mark.parametrize("body, message", [
    ("x" * 1025, "body is 1025 characters, the limit is 1024"),
    ("{{first_name}} starts the body.", "body must not start or end with a variable"),
    ("Hi {{first_name}}{{discount}} here.", "body has adjacent variables; put text between them"),
    ("Hi {{1}} and {{first_name}} mixed.", "body variable {{1}} must be lowercase letters, digits, underscores"),
])
def test_body_rules(body, message):
    text = (FILES / "good" / "winter_sale.yaml").read_text().replace(
        '"Hi {{first_name}}, everything is {{discount}} off until Sunday. Have a look!"', repr(body))
    _found, issues = check_paths_text(text)
    assert f"en_US: {message}" in [f"{p.language}: {p.message}" for p in issues]


def test_button_limits():
    buttons = "\n".join(f"      - {{kind: quick_reply, text: Option {i}, payload: p{i}}}" for i in range(11))
    text = (FILES / "good" / "winter_sale.yaml").read_text().split("  es:")[0]
    text = text.replace("      - {kind: quick_reply, text: Show me, payload: sale_show}\n"
                        "      - {kind: quick_reply, text: Not now, payload: sale_later}", buttons)
    _found, issues = check_paths_text(text)
    assert [p.message for p in issues] == ["buttons: 11 buttons, the limit is 10"]
    phones = text.replace(buttons, "      - {kind: phone_number, text: Call, phone_number: '+15550000001'}\n"
                                   "      - {kind: phone_number, text: Call again, phone_number: '+15550000002'}")
    assert [p.message for p in check_paths_text(phones)[1]] == ["buttons: 2 phone_number buttons, the limit is 1"]


def check_paths_text(text: str):
    import tempfile

    folder = Path(tempfile.mkdtemp())  # a folder per call: check_paths reads every file in it
    (folder / "t.yaml").write_text(text, encoding="utf-8")
    return check_paths([folder])


def test_structure_errors_name_the_field():
    with pytest.raises(TemplateError, match=r"x.yaml: languages.fr: unknown field\(s\) bodyy"):
        load_template_file("name: a\ncategory: UTILITY\nlanguages: {fr: {bodyy: salut}}\n", "x.yaml")
    with pytest.raises(TemplateError, match=r"x.yaml: category: 'PROMO' is not one of MARKETING"):
        load_template_file("name: a\ncategory: PROMO\nlanguages: {fr: {body: salut}}\n", "x.yaml")


def test_the_shipped_catalogue_validates_too_and_a_folder_merges_over_it():
    found, issues = check_paths([ROOT / "core" / "templates.yaml"])
    assert issues == [] and len(found) == len(default_catalogue().templates)
    merged = merge_catalogues(default_catalogue(), load_folder(FILES / "good"))
    assert merged.get("winter_sale", "es").language == "es"
    assert merged.get("cart_reminder").name == "cart_reminder"


def test_cli_validate_exits_1_with_the_problems():
    from click.testing import CliRunner

    from bridge.cli import main

    ok = CliRunner().invoke(main, ["templates", "validate", str(FILES / "good" / "winter_sale.yaml")])
    assert ok.exit_code == 0, ok.stderr
    assert "2 template language(s) in 1 template(s) checked, 0 problem(s)" in ok.stdout
    bad = CliRunner().invoke(main, ["templates", "validate", str(FILES)])
    assert bad.exit_code == 1
    assert "broken_promo.yaml: en_US: header is 73 characters, the limit is 60" in bad.stderr
    assert "5 problem(s)" in bad.stdout
