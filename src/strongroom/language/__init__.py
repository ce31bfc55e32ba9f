"""The environment language (Pulumi ESC compatible): compile, evaluate, project.

``compile_definition`` parses YAML (ruamel, lazily) into a ``Compiled`` form that is
cached as JSON; ``evaluate`` resolves imports, references and built-in functions
into an ``Evaluation``; the ``project_*`` functions read ``environmentVariables``,
``files`` and ``pulumiConfig`` out of it. See docs/language.md.
"""

from __future__ import annotations

from strongroom.language.compiler import BUILTINS, Compiled, ImportDecl, compile_definition
from strongroom.language.diagnostics import ERROR, WARNING, LangDiagnostic
from strongroom.language.evaluator import ANONYMOUS_ENVIRONMENT, Evaluation, evaluate
from strongroom.language.limits import DEFAULT_LIMITS, Limits
from strongroom.language.paths import Path, format_path, parse_path
from strongroom.language.projections import (
    Projected,
    Projection,
    project_environment_variables,
    project_files,
    project_pulumi_config,
)
from strongroom.language.providers import LoadError, Provider, ProviderOutput, Rotator
from strongroom.language.values import EvalValue

__all__ = [
    "ANONYMOUS_ENVIRONMENT",
    "BUILTINS",
    "DEFAULT_LIMITS",
    "ERROR",
    "WARNING",
    "Compiled",
    "EvalValue",
    "Evaluation",
    "ImportDecl",
    "LangDiagnostic",
    "Limits",
    "LoadError",
    "Path",
    "Projected",
    "Projection",
    "Provider",
    "ProviderOutput",
    "Rotator",
    "compile_definition",
    "evaluate",
    "format_path",
    "parse_path",
    "project_environment_variables",
    "project_files",
    "project_pulumi_config",
]
