"""JSON Schema validation (via ``jsonschema``, imported lazily) with ESC's wording.

Used by ``fn::validate``, by provider input schemas and by rotator state schemas.
Messages name types, bounds and property names, never the offending value, so a
secret being validated cannot leak into a diagnostic.
"""

from __future__ import annotations

__all__ = ["SchemaProblem", "schema_error", "validate"]

import json
from typing import Any

from strongroom.language.diagnostics import kind_name
from strongroom.language.values import go_quote

#: (path relative to the validated value, message)
SchemaProblem = tuple[tuple[str | int, ...], str]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _validator_class(schema: Any) -> Any:
    from jsonschema import Draft202012Validator, validators

    return validators.validator_for(schema, default=Draft202012Validator)


def schema_error(schema: Any) -> str | None:
    """What is wrong with ``schema`` itself, or ``None`` if it is a valid JSON Schema."""
    if not isinstance(schema, dict | bool):
        return f"a schema must be an object or a boolean, not {kind_name(schema)}"
    from jsonschema.exceptions import SchemaError

    try:
        _validator_class(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"invalid schema{' at ' + where if where else ''}: {exc.message}"
    except Exception as exc:  # any failure of a user's schema is a diagnostic
        return f"invalid schema ({type(exc).__name__})"
    return None


def _translate(error: Any, out: list[SchemaProblem], seen: set[SchemaProblem]) -> None:
    path = tuple(error.absolute_path)
    keyword = error.validator
    expected = error.validator_value
    instance = error.instance

    def add(message: str, at: tuple[str | int, ...] = path) -> None:
        item = (at, message)
        if item not in seen:
            seen.add(item)
            out.append(item)

    if keyword == "type":
        types = expected if isinstance(expected, list) else [expected]
        add(f"expected {' or '.join(str(t) for t in types)}, got {kind_name(instance)}")
    elif keyword == "required":
        missing = [p for p in expected if isinstance(instance, dict) and p not in instance]
        add(f"missing required properties: {', '.join(missing)}")
    elif keyword in ("dependentRequired", "dependencies"):
        missing = []
        for prop, deps in expected.items():
            if isinstance(instance, dict) and prop in instance and isinstance(deps, list):
                missing += [d for d in deps if d not in instance and d not in missing]
        if missing:
            add(f"missing required properties: {', '.join(missing)}")
        else:
            add("a dependent schema does not match")
    elif keyword == "const":
        add(f"expected {_compact(expected)}")
    elif keyword == "enum":
        add(f"expected one of {_compact(expected)}")
    elif keyword == "multipleOf":
        add(f"expected a multiple of {_num(expected)}")
    elif keyword == "minimum":
        add(f"expected a number greater than or equal to {_num(expected)}")
    elif keyword == "exclusiveMinimum":
        add(f"expected a number greater than {_num(expected)}")
    elif keyword == "maximum":
        add(f"expected a number less than or equal to {_num(expected)}")
    elif keyword == "exclusiveMaximum":
        add(f"expected a number less than {_num(expected)}")
    elif keyword == "minLength":
        add(f"expected a string of at least length {expected}")
    elif keyword == "maxLength":
        add(f"expected a string of at most length {expected}")
    elif keyword == "pattern":
        add(f"string must match the pattern {go_quote(str(expected))}")
    elif keyword == "minItems":
        add(f"expected an array with at least {expected} items")
    elif keyword == "maxItems":
        add(f"expected an array with at most {expected} items")
    elif keyword == "minProperties":
        add(f"expected an object with at least {expected} properties")
    elif keyword == "maxProperties":
        add(f"expected an object with at most {expected} properties")
    elif keyword in ("anyOf", "oneOf"):
        if keyword == "anyOf":
            add("at least one subschema must match")
        else:
            add("exactly one subschema must match")
        for sub in error.context or ():
            _translate(sub, out, seen)
    elif keyword in ("additionalProperties", "unevaluatedProperties") and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        known = set(schema.get("properties", {}))
        extras = [k for k in instance if k not in known]
        for key in extras or ["?"]:
            add(f'unexpected property "{key}"')
    elif keyword == "uniqueItems":
        add("array items must be unique")
    elif keyword == "not":
        add("the value must not match the schema given under 'not'")
    elif keyword == "contains":
        add("expected the array to contain a matching item")
    elif keyword is None or expected is False:
        add("no value is allowed here")
    else:
        add(f"the value does not satisfy the schema's {keyword!s}")


def validate(instance: Any, schema: Any) -> list[SchemaProblem]:
    """Every way ``instance`` (plain data) fails ``schema``, in ESC's words."""
    problems: list[SchemaProblem] = []
    seen: set[SchemaProblem] = set()
    try:
        validator = _validator_class(schema)(schema)
        for error in validator.iter_errors(instance):
            _translate(error, problems, seen)
    except RecursionError:
        problems.append(((), "the schema is nested too deeply to check"))
    except Exception as exc:  # any failure of a user's schema is a diagnostic
        problems.append(((), f"the schema could not be used ({type(exc).__name__})"))
    return problems
