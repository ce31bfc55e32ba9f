"""Property paths: parse_path and format_path."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from strongroom.errors import PathError
from strongroom.language.paths import format_path, parse_path

# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", ("a",)),
        ("a.b.c", ("a", "b", "c")),
        ("pulumiConfig", ("pulumiConfig",)),
        # The runbook form with the quotes kept, and as the shell hands it over (quotes stripped).
        ('pulumiConfig."namespace:imagePullSecret:token"', ("pulumiConfig", "namespace:imagePullSecret:token")),
        ("pulumiConfig.namespace:imagePullSecret:token", ("pulumiConfig", "namespace:imagePullSecret:token")),
        ('pulumiConfig."postgresql:password"', ("pulumiConfig", "postgresql:password")),
        ("a[0]", ("a", 0)),
        ("a[0][12]", ("a", 0, 12)),
        ("a[0].b", ("a", 0, "b")),
        ("[3]", (3,)),
        ('a["b.c"]', ("a", "b.c")),
        ('a["b.c"][1]', ("a", "b.c", 1)),
        ('a["x[0]"]', ("a", "x[0]")),
        ('"a.b"', ("a.b",)),
        ('"a.b".c', ("a.b", "c")),
        ('""', ("",)),
        ('a["with \\"quote\\""]', ("a", 'with "quote"')),
        ('a["back\\\\slash"]', ("a", "back\\slash")),
        ('a["line\\nbreak"]', ("a", "line\nbreak")),
        ('a["\\u00e9\\t"]', ("a", "é\t")),
        ('a."dots.and:colons"', ("a", "dots.and:colons")),
        ("a b.c d", ("a b", "c d")),
        ("héllo.wörld", ("héllo", "wörld")),
        ("a-b_c.d", ("a-b_c", "d")),
    ],
)
def test_parse_path(text, expected):
    assert parse_path(text) == expected


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("", "empty"),
        ("a.", "ends with '.'"),
        ("a..b", "empty key"),
        (".a", "empty key"),
        ("a[0", "unclosed"),
        ("[", "unclosed"),
        ("a[x]", "non-negative number"),
        ("a[-1]", "non-negative number"),
        ("a[]", "non-negative number"),
        ("a[1.5]", "non-negative number"),
        ('a."b', "unterminated"),
        ('"abc', "unterminated"),
        ('a["b', "unterminated"),
        ('a["b"', "expected ']'"),
        ('a["b"x]', "expected ']'"),
        ('"a\\', "unterminated"),
        ("a[0]b", "expected '.' or '['"),
        ('"a"b', "expected '.' or '['"),
        ("a]", "expected '.' or '['"),
        ('a["\\q"]', "invalid escape"),
        ("]", "unexpected"),
        ('a."b""c"', "expected '.' or '['"),
    ],
)
def test_parse_path_errors(text, what):
    with pytest.raises(PathError) as info:
        parse_path(text)
    message = str(info.value)
    assert what in message
    assert "invalid path" in message
    assert info.value.exit_code == 1


def test_path_error_names_the_position():
    with pytest.raises(PathError, match="at character 3"):
        parse_path("a..b")


def test_superscript_digit_index_is_a_path_error():
    with pytest.raises(PathError):
        parse_path("a[²]")


def test_non_ascii_digit_index_is_a_path_error():
    with pytest.raises(PathError):
        parse_path("a[\u0661]")  # ARABIC-INDIC DIGIT ONE


# --------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        (("a", "b"), "", "a.b"),
        (("a", 0, "b"), "", "a[0].b"),
        (("pulumiConfig", "postgresql:password"), "", 'pulumiConfig["postgresql:password"]'),
        (("a.b",), "", '["a.b"]'),
        (("a", "b"), "values", "values.a.b"),
        ((0,), "values", "values[0]"),
        ((), "values", "values"),
        ((), "", ""),
        (('q"',), "", '["q\\""]'),
    ],
)
def test_format_path(path, root, expected):
    assert format_path(path, root) == expected


# --------------------------------------------------------------------------- round trip

indexes = st.integers(min_value=0, max_value=10**12)
paths = st.lists(st.one_of(st.text(min_size=1), indexes), min_size=1, max_size=6).map(tuple)


@given(paths)
@example(("pulumiConfig", "namespace:imagePullSecret:token"))
@example(("a.b", 0, 'quote"', "back\\slash", "[x]", "é", " ", "\u2028", "a]b", '"'))
@example(("a\nb",))  # once read back as ("anb",): control characters are written as JSON escapes
@example(("\x00\x1f\x7f\t",))
def test_format_then_parse_round_trips(path):
    assert parse_path(format_path(path)) == path
