"""Rendering for the terminal: to_yaml / to_json, secrets masked unless revealed and asked for."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from strongroom.cli.render import MASK, to_json, to_yaml, unmask
from strongroom.model import Secret


@pytest.fixture
def canary() -> str:
    return f"CANARY-{uuid.uuid4().hex}"


def load_yaml(text: str) -> Any:
    return YAML(typ="safe").load(text)


def same(a: Any, b: Any) -> bool:
    """Equality that also tells bool from int and int from float (1 == True == 1.0 in Python)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# --------------------------------------------------------------------------- masking


def test_yaml_masks_secrets(canary):
    value = {"pulumiConfig": {"gateway:digitaloceanDnsToken": Secret(canary), "grafana:smtpPort": 587}}
    text = to_yaml(value)
    assert canary not in text
    assert text == "pulumiConfig:\n  gateway:digitaloceanDnsToken: [secret]\n  grafana:smtpPort: 587\n"


def test_json_masks_secrets(canary):
    value = {"a": Secret(canary), "b": [Secret(canary), 1]}
    text = to_json(value)
    assert canary not in text
    assert json.loads(text) == {"a": MASK, "b": [MASK, 1]}


@pytest.mark.parametrize("render", [to_yaml, to_json])
def test_show_secrets_reveals_revealed_secrets(render, canary):
    text = render({"a": Secret(canary), "b": [{"c": Secret(canary)}]}, show_secrets=True)
    assert text.count(canary) == 2
    assert MASK not in text


@pytest.mark.parametrize("render", [to_yaml, to_json])
def test_secret_read_masked_stays_masked_even_with_show_secrets(render):
    text = render({"a": Secret(None)}, show_secrets=True)
    assert MASK in text


@pytest.mark.parametrize("render", [to_yaml, to_json])
def test_secrets_masked_by_default_at_any_depth(render, canary):
    value = [{"a": [[{"b": Secret(canary)}]]}, Secret(canary), {"k": {"l": Secret(canary)}}]
    text = render(value)
    assert canary not in text
    assert text.count(MASK) == 3


def test_revealed_secret_is_quoted_when_a_plain_scalar_would_change_it():
    for plaintext in ("yes", "587", "null", "a: b", "- x", "#x", "", " lead"):
        loaded = load_yaml(to_yaml({"s": Secret(plaintext)}, show_secrets=True))
        assert loaded == {"s": plaintext}


def test_a_plain_string_that_reads_like_the_mask_is_not_shown_as_a_secret():
    assert to_yaml({"a": MASK}) != to_yaml({"a": Secret("x")})
    assert load_yaml(to_yaml({"a": MASK})) == {"a": MASK}


def test_unmask(canary):
    value = {"a": Secret(canary), "b": [Secret(None)], "c": 1}
    assert unmask(value, show_secrets=False) == {"a": MASK, "b": [MASK], "c": 1}
    assert unmask(value, show_secrets=True) == {"a": canary, "b": [MASK], "c": 1}


def test_top_level_secret_and_scalars():
    assert to_yaml(Secret("x")) == f"{MASK}\n"
    assert to_json(Secret("x")) == f'"{MASK}"'
    assert load_yaml(to_yaml(587)) == 587
    assert load_yaml(to_yaml("alerts@example.com")) == "alerts@example.com"
    assert to_yaml(True) == "true\n"
    assert to_yaml(None) == "null\n"


def test_json_keeps_unicode_readable():
    assert to_json({"k": "é"}, indent=None) == '{"k": "é"}'


# --------------------------------------------------------------------------- round trip through ruamel

TRICKY = [
    "yes", "no", "Yes", "NO", "on", "off", "y", "n", "true", "False", "null", "Null", "~", "",
    "1.5", "0x1f", "0o17", "017", "1e3", "1_000", ".5", "-1", "+1", ".inf", "-.inf", ".nan", "NaN",
    "2001-12-14", "12:30", ":", "a:", "a: b", "a:b", "#", "a #b", "a#b", "-", "- a", "--", "---", "...",
    "?", "? a", "!", "!!str", "&a", "*a", "|", ">", "%", "@", "`", "'", '"', "{", "}", "[", "]", ",",
    "=", "<<", "a\nb", "\n", " a", "a ", "\t", "a\tb", "\\", "\x00", "\x1b", "\x7f", "\u2028", "\ufeff",
    "é", "日本", "🙂",
]  # fmt: skip

text = st.one_of(st.text(), st.sampled_from(TRICKY))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    text,
)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(text, children, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_like)
@example({"pulumiConfig": {"grafana:smtpPort": 587, "grafana:smtpHost": "smtp.gmail.com"}})
@example({"k": ["yes", "null", "1.5", "0x1f", ":", "#", "-a", "- a", "a\nb", 'q"uote', "\x01"]})
@example({"": {"": [[], {}, [[1]], [{"a": {}}]]}})
@example([{"a": 1, "b": [1, {"c": None}]}, [-0.0, 1e16, 5e-324, -1.5e-7]])
@example({})  # once read back as null: to_yaml({}) was "\n"
@example([])
@example("a\x85b")  # once read back as "a b": NEL was written raw inside double quotes
@example({"k\x85": ["\x85"]})
def test_yaml_round_trips_through_ruamel(data):
    """ruamel reads to_yaml's output back as the same data, types included."""
    assert same(load_yaml(to_yaml(data)), data)


def test_empty_environment_renders_as_an_empty_mapping():
    assert to_yaml({}) == "{}\n"
    assert to_yaml([]) == "[]\n"


@settings(max_examples=200, deadline=None)
@given(json_like)
def test_json_round_trips(data):
    assert same(json.loads(to_json(data)), data)
