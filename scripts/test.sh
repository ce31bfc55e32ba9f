#!/usr/bin/env bash
# Runs the whole test suite in a project virtualenv (created on first use).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${STRONGROOM_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/pytest" ] || [ "$root/pyproject.toml" -nt "$venv/.installed-test" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e "$root[test]"
  touch "$venv/.installed-test" "$venv/.installed"
fi
cd "$root"
"$venv/bin/ruff" check
"$venv/bin/mypy"
exec "$venv/bin/pytest" "$@"
