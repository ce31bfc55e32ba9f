"""Explicit bounds on compiling and evaluating a definition.

Every bound turns a pathological definition (deep nesting, alias bombs, string
doubling, reference chains) into a diagnostic instead of a hang, a crash or a
``RecursionError``. The defaults are generous for real configuration and are
documented in docs/language.md; callers may pass their own ``Limits``.
"""

from __future__ import annotations

__all__ = ["DEFAULT_LIMITS", "Limits"]

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied by ``compile_definition`` and ``evaluate``."""

    #: Largest definition text, in UTF-8 bytes.
    max_definition_bytes: int = 1024 * 1024
    #: Deepest nesting of mappings and lists in a definition.
    max_depth: int = 64
    #: Most values in one definition once YAML aliases are expanded.
    max_nodes: int = 200_000
    #: Deepest nesting of an evaluated value (references can nest values deeper than the source).
    max_value_depth: int = 128
    #: Most elements (scalars, lists and objects) in one evaluated value.
    max_value_nodes: int = 200_000
    #: Longest string one step of evaluation may produce, in characters.
    max_string_length: int = 1024 * 1024
    #: Most characters all steps of one evaluation may produce together.
    max_total_string_length: int = 16 * 1024 * 1024
    #: Longest chain of references evaluated one inside another.
    max_reference_depth: int = 1000
    #: Deepest chain of imports (an environment importing one importing another ...).
    max_import_depth: int = 64
    #: Most evaluation steps (roughly: values evaluated) in one evaluation.
    max_steps: int = 2_000_000


DEFAULT_LIMITS = Limits()
