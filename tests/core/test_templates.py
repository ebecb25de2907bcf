from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from core.errors import PermanentError, TemplateError
from core.templates import (
    Button,
    ButtonKind,
    Catalogue,
    Category,
    ParameterFormat,
    Rendered,
    Template,
    TemplateStatus,
    default_catalogue,
    load_catalogue,
    normalise_language,
    render,
    validate_template,
)

NAMED = ParameterFormat.NAMED
POSITIONAL = ParameterFormat.POSITIONAL


def qr(text: str, payload: str) -> Button:
    return Button(kind=ButtonKind.QUICK_REPLY, text=text, payload=payload)


URL = Button(kind=ButtonKind.URL, text="Open", url="https://example.com/x")
PHONE = Button(kind=ButtonKind.PHONE_NUMBER, text="Call", phone_number="+15550100")
CODE = Button(kind=ButtonKind.COPY_CODE, text="Copy code")

BASE = Template(
    name="cart_reminder",
    language="en_US",
    category=Category.MARKETING,
    status=TemplateStatus.APPROVED,
    parameter_format=NAMED,
    header_text="Your cart",
    body="Hi {{first_name}}, your cart is worth {{cart_total}}. See you soon.",
    footer="Reply STOP to opt out",
    buttons=(qr("Complete my order", "cart_complete"), qr("I need help", "cart_help")),
    examples={"first_name": "Maria", "cart_total": "€10"},
)

POS = dataclasses.replace(
    BASE,
    name="pos",
    parameter_format=POSITIONAL,
    body="Hi {{1}}, your cart is worth {{2}}. See you soon.",
    examples={"1": "Maria", "2": "€10"},
)


def test_base_templates_are_valid() -> None:
    validate_template(BASE)
    validate_template(POS)
    assert BASE.params == ("first_name", "cart_total")
    assert POS.params == ("1", "2")


def test_template_error_is_permanent() -> None:
    assert issubclass(TemplateError, PermanentError)


INVALID = {
    "name uppercase": (dict(name="Cart"), "name"),
    "name too long": (dict(name="a" * 513), "name"),
    "language hyphen": (dict(language="en-US"), "language"),
    "body too long": (dict(body="Hi {{first_name}} {{cart_total}}." + "x" * 1024), "body is"),
    "body empty": (dict(body="  ", examples={}), "body is empty"),
    "header too long": (dict(header_text="h" * 61), "header_text is 61 characters"),
    "header two variables": (
        dict(header_text="{{first_name}} and {{cart_total}}"),
        "header_text has 2 variables",
    ),
    "footer too long": (dict(footer="f" * 61), "footer is 61 characters"),
    "footer variable": (dict(footer="Bye {{first_name}}"), "footer"),
    "named variable uppercase": (
        dict(body="Hi {{First}}, bye.", examples={"First": "x"}),
        "body variable {{First}}",
    ),
    "named variable with spaces": (
        dict(body="Hi {{ first_name }}, bye.", examples={" first_name ": "x"}),
        "body variable",
    ),
    "positional gap": (
        dict(parameter_format=POSITIONAL, body="Hi {{1}} and {{3}}, bye.", examples={"1": "a", "3": "b"}),
        "body positional variables",
    ),
    "positional out of order": (
        dict(parameter_format=POSITIONAL, body="Hi {{2}} and {{1}}, bye.", examples={"1": "a", "2": "b"}),
        "body positional variables",
    ),
    "positional uses a name": (
        dict(parameter_format=POSITIONAL, body="Hi {{name}}, bye.", examples={"name": "a"}),
        "body positional variables",
    ),
    "adjacent variables": (dict(body="Hi {{first_name}}{{cart_total}} bye."), "body has adjacent variables"),
    "adjacent with space": (dict(body="Hi {{first_name}} {{cart_total}} bye."), "body has adjacent variables"),
    "body starts with variable": (dict(body="{{first_name}}, your cart: {{cart_total}}."), "body must not start"),
    "body ends with variable": (dict(body="Hi {{first_name}}, total {{cart_total}}"), "body must not start or end"),
    "unbalanced braces": (dict(body="Hi {{first_name}, total {{cart_total}}."), "body has unbalanced braces"),
    "too many buttons": (dict(buttons=tuple(qr(f"b{i}", f"p{i}") for i in range(11))), "buttons: 11 buttons"),
    "too many url": (dict(buttons=(URL, URL, URL)), "buttons: 3 url buttons, the limit is 2"),
    "too many phone": (dict(buttons=(PHONE, PHONE)), "buttons: 2 phone_number buttons"),
    "too many copy_code": (dict(buttons=(CODE, CODE)), "buttons: 2 copy_code buttons"),
    "quick replies split": (dict(buttons=(qr("a", "a"), URL, qr("b", "b"))), "grouped together"),
    "label too long": (dict(buttons=(qr("x" * 26, "a"),)), "buttons[0].text"),
    "label empty": (dict(buttons=(qr(" ", "a"),)), "buttons[0].text"),
    "payload duplicate": (dict(buttons=(qr("a", "same"), qr("b", "same"))), "payload 'same' is used twice"),
    "payload empty": (dict(buttons=(qr("a", ""),)), "buttons[0].payload is required"),
    "payload on url button": (
        dict(buttons=(dataclasses.replace(URL, payload="p"),)),
        "buttons[0].payload is only for quick_reply",
    ),
    "url missing": (dict(buttons=(Button(kind=ButtonKind.URL, text="Open"),)), "buttons[0].url is required"),
    "url not http": (dict(buttons=(dataclasses.replace(URL, url="ftp://x"),)), "buttons[0].url must be"),
    "url variable not at end": (
        dict(buttons=(dataclasses.replace(URL, url="https://x.com/{{code}}/y"),), examples=None),
        "buttons[0].url may only end with one variable",
    ),
    "url two variables": (
        dict(buttons=(dataclasses.replace(URL, url="https://x.com/{{a}}/{{b}}"),)),
        "buttons[0].url may only end",
    ),
    "phone not digits": (dict(buttons=(dataclasses.replace(PHONE, phone_number="call me"),)), "phone_number"),
    "example missing": (dict(examples={"first_name": "Maria"}), "examples: no example for 'cart_total'"),
    "example extra": (dict(examples={**BASE.examples, "other": "x"}), "examples: 'other' is not a parameter"),
    "example has newline": (dict(examples={**BASE.examples, "cart_total": "1\n2"}), "examples['cart_total']"),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_validation_rule(case: str) -> None:
    changes, fragment = INVALID[case]
    changes = {k: v for k, v in changes.items() if v is not None}
    template = dataclasses.replace(BASE, **changes)
    with pytest.raises(TemplateError) as info:
        validate_template(template)
    message = str(info.value)
    assert message.startswith(f"template {template.name!r}: ")
    assert fragment in message


def test_body_length_message_names_field_and_limit() -> None:
    t = dataclasses.replace(BASE, body="Hi {{first_name}}, {{cart_total}}." + "x" * 1066)
    with pytest.raises(TemplateError, match=r"template 'cart_reminder': body is 1100 characters, the limit is 1024"):
        validate_template(t)


def test_header_and_url_variables_are_parameters() -> None:
    url = Button(kind=ButtonKind.URL, text="Open cart", url="https://shop.example.com/c/{{token}}")
    t = dataclasses.replace(
        BASE,
        header_text="For {{first_name}}",
        buttons=(*BASE.buttons, url),
        examples={**BASE.examples, "token": "abc"},
    )
    validate_template(t)
    assert t.all_params == ("first_name", "cart_total", "token")
    r = render(t, {"first_name": "Ana", "cart_total": "€5", "token": "zz"})
    assert r.header == "For Ana"
    assert r.params == (("first_name", "Ana"), ("cart_total", "€5"), ("token", "zz"))


def test_positional_header_and_url_keys() -> None:
    url = Button(kind=ButtonKind.URL, text="Open", url="https://x.com/{{1}}")
    t = dataclasses.replace(
        POS,
        header_text="Hello {{1}}",
        buttons=(url,),
        examples={"header_1": "H", "1": "Maria", "2": "€10", "button_0": "abc"},
    )
    validate_template(t)
    assert t.all_params == ("header_1", "1", "2", "button_0")
    r = render(t, {"header_1": "Ana", 1: "Bo", 2: "€3", "button_0": "q"})
    assert (r.header, r.body) == ("Hello Ana", "Hi Bo, your cart is worth €3. See you soon.")


def test_positional_url_variable_must_be_one() -> None:
    url = Button(kind=ButtonKind.URL, text="Open", url="https://x.com/{{2}}")
    with pytest.raises(TemplateError, match=r"buttons\[0\]\.url positional variables must be \{\{1\}\}"):
        validate_template(dataclasses.replace(POS, buttons=(url,), examples={**POS.examples, "button_0": "x"}))


def test_repeated_variable_is_one_parameter() -> None:
    t = dataclasses.replace(BASE, body="Hi {{first_name}}, {{cart_total}} for {{first_name}}.")
    assert t.params == ("first_name", "cart_total")
    assert render(t, BASE.examples).body == "Hi Maria, €10 for Maria."


# ---------------------------------------------------------------- render


def test_render_success() -> None:
    r = render(BASE, {"first_name": "Ana", "cart_total": 12.5})
    assert isinstance(r, Rendered)
    assert r.template is BASE
    assert r.params == (("first_name", "Ana"), ("cart_total", "12.5"))
    assert r.header == "Your cart"
    assert r.body == "Hi Ana, your cart is worth 12.5. See you soon."
    assert r.footer == "Reply STOP to opt out"
    assert r.buttons == ("Complete my order", "I need help")
    assert r.text.startswith("Your cart\n\nHi Ana")
    assert r.text.endswith("[Complete my order] [I need help]")


def test_render_positional_accepts_int_keys() -> None:
    assert render(POS, {1: "Ana", "2": "€1"}).body == "Hi Ana, your cart is worth €1. See you soon."


RENDER_FAILURES = {
    "missing": ({"first_name": "Ana"}, "missing parameters: 'cart_total'"),
    "missing all": ({}, "missing parameters: 'first_name', 'cart_total'"),
    "extra": ({"first_name": "Ana", "cart_total": "1", "coupon": "X"}, "unknown parameters: 'coupon'"),
    "newline": ({"first_name": "A\nna", "cart_total": "1"}, "parameter 'first_name' contains a newline"),
    "tab": ({"first_name": "A\tna", "cart_total": "1"}, "parameter 'first_name' contains a newline or tab"),
    "five spaces": ({"first_name": "A     na", "cart_total": "1"}, "more than 4 consecutive spaces"),
    "empty": ({"first_name": "   ", "cart_total": "1"}, "parameter 'first_name' is empty"),
    "none": ({"first_name": None, "cart_total": "1"}, "parameter 'first_name' is None"),
    "param too long": ({"first_name": "a" * 1025, "cart_total": "1"}, "parameter 'first_name' is 1025 characters"),
    "body too long": ({"first_name": "a" * 1000, "cart_total": "1"}, "rendered body is"),
}


@pytest.mark.parametrize("case", RENDER_FAILURES, ids=list(RENDER_FAILURES))
def test_render_failure(case: str) -> None:
    params, fragment = RENDER_FAILURES[case]
    with pytest.raises(TemplateError) as info:
        render(BASE, params)
    assert str(info.value).startswith("template 'cart_reminder': ")
    assert fragment in str(info.value)


def test_four_spaces_are_allowed() -> None:
    assert "A    na" in render(BASE, {"first_name": "A    na", "cart_total": "1"}).body


def test_rendered_header_limit() -> None:
    t = dataclasses.replace(BASE, header_text="For {{first_name}}")
    with pytest.raises(TemplateError, match="rendered header is 64 characters"):
        render(t, {"first_name": "x" * 60, "cart_total": "1"})


def test_render_rejects_invalid_template() -> None:
    with pytest.raises(TemplateError, match="footer"):
        render(dataclasses.replace(BASE, footer="x" * 61), BASE.examples)


# ---------------------------------------------------------------- catalogue and loading

TWO_LANGUAGES = """
- name: hello
  language: pt-br
  category: utility
  status: approved
  body: Olá {{1}}, tudo bem?
  examples: {1: Ana}
- name: hello
  language: en_US
  category: UTILITY
  status: PENDING
  body: Hello {{1}}, how are you?
  examples: {"1": Ana}
"""


def test_language_normalisation() -> None:
    assert normalise_language("en-US") == "en_US"
    assert normalise_language("en-us") == "en_US"
    assert normalise_language("pt_BR") == "pt_BR"
    assert normalise_language("EN") == "en"
    catalogue = load_catalogue(TWO_LANGUAGES)
    assert [t.language for t in catalogue.templates] == ["pt_BR", "en_US"]
    assert catalogue.get("hello", "en-US").language == "en_US"
    assert catalogue.get("hello", "en_us").language == "en_US"
    assert catalogue.get("hello", "pt-BR").body == "Olá {{1}}, tudo bem?"
    assert catalogue.get("hello").language == "pt_BR"  # first listed
    assert catalogue.names() == ("hello",)
    assert catalogue.get("hello", "en_US").status is TemplateStatus.PENDING
    assert catalogue.get("hello").category is Category.UTILITY


def test_get_missing_template_or_language_names_it() -> None:
    catalogue = load_catalogue(TWO_LANGUAGES)
    with pytest.raises(TemplateError, match="template 'nope' is not in the catalogue"):
        catalogue.get("nope")
    with pytest.raises(TemplateError, match=r"template 'hello' has no 'de_DE' version \(available: pt_BR, en_US\)"):
        catalogue.get("hello", "de_DE")


LOAD_FAILURES = {
    "not yaml": ("- name: [unclosed", "not valid YAML"),
    "not a list": ("name: x", "expected a list of templates"),
    "item not mapping": ("- just a string", "template #1 is not a mapping"),
    "missing field": ("- {name: x, language: en_US, category: UTILITY, body: Hi there}", "template 'x': missing fields ['status']"),
    "unknown field": (
        "- {name: x, language: en_US, category: UTILITY, status: APPROVED, body: Hi there, colour: red}",
        "template 'x': unknown fields ['colour']",
    ),
    "bad category": (
        "- {name: x, language: en_US, category: PROMO, status: APPROVED, body: Hi there}",
        "template 'x': category 'PROMO' is not one of",
    ),
    "bad button kind": (
        "- {name: x, language: en_US, category: UTILITY, status: APPROVED, body: Hi there, buttons: [{kind: flow, text: Go}]}",
        "buttons[0]: kind 'flow' is not one of",
    ),
    "invalid template": (
        "- {name: x, language: en_US, category: UTILITY, status: APPROVED, body: '{{1}} hi'}",
        "template 'x': body must not start",
    ),
    "duplicate language": (
        "- {name: x, language: en_US, category: UTILITY, status: APPROVED, body: Hi}\n"
        "- {name: x, language: en-US, category: UTILITY, status: APPROVED, body: Hello}",
        "template 'x': language en_US is defined twice",
    ),
}


@pytest.mark.parametrize("case", LOAD_FAILURES, ids=list(LOAD_FAILURES))
def test_load_failure(case: str) -> None:
    text, fragment = LOAD_FAILURES[case]
    with pytest.raises(TemplateError) as info:
        load_catalogue(text)
    assert fragment in str(info.value)


def test_load_from_path(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(TWO_LANGUAGES, encoding="utf-8")
    assert load_catalogue(path).names() == ("hello",)
    assert load_catalogue(str(path)).names() == ("hello",)
    with pytest.raises(TemplateError, match="cannot read"):
        load_catalogue(tmp_path / "missing.yaml")


def test_empty_catalogue() -> None:
    assert load_catalogue("").templates == ()
    assert Catalogue().names() == ()


def test_catalogue_validates_constructed_templates() -> None:
    with pytest.raises(TemplateError, match="footer"):
        Catalogue(templates=(dataclasses.replace(BASE, footer="x" * 61),))


# ---------------------------------------------------------------- the shipped catalogue

SHIPPED = {
    "cart_reminder": (Category.MARKETING, ("first_name", "cart_total", "recovery_link"), ("cart_complete", "cart_help")),
    "cart_reminder_2": (Category.MARKETING, ("first_name", "cart_total", "recovery_link"), ("cart_complete", "cart_help")),
    "welcome_optin": (Category.MARKETING, ("first_name",), ("topic_pricing", "topic_demo", "topic_support")),
    "appointment_reminder": (
        Category.UTILITY,
        ("first_name", "service", "starts_at"),
        ("booking_confirm", "booking_reschedule"),
    ),
    "conversation_reopen": (Category.UTILITY, ("first_name",), ()),
}


def test_shipped_catalogue_contents() -> None:
    catalogue = default_catalogue()
    assert set(SHIPPED) <= set(catalogue.names())
    for name, (category, params, payloads) in SHIPPED.items():
        t = catalogue.get(name, "en-US")
        assert (t.language, t.category, t.status) == ("en_US", category, TemplateStatus.APPROVED)
        assert t.parameter_format is NAMED
        assert t.params == params
        assert tuple(b.payload for b in t.buttons) == payloads
        assert all(b.kind is ButtonKind.QUICK_REPLY for b in t.buttons)


def test_shipped_cart_reminder_details() -> None:
    t = default_catalogue().get("cart_reminder")
    assert t.footer == "Reply STOP to opt out"
    assert [b.text for b in t.buttons] == ["Complete my order", "I need help"]
    labels = [b.text for b in default_catalogue().get("welcome_optin").buttons]
    assert labels == ["Pricing", "Demo", "Support"]
    labels = [b.text for b in default_catalogue().get("appointment_reminder").buttons]
    assert labels == ["Confirm", "Reschedule"]


@pytest.mark.parametrize("template", default_catalogue().templates, ids=lambda t: f"{t.name}-{t.language}")
def test_every_shipped_template_renders_its_examples(template: Template) -> None:
    rendered = render(template, template.examples)
    assert "{{" not in rendered.body
    for value in template.examples.values():
        assert value in rendered.body
