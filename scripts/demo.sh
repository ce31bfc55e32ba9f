#!/usr/bin/env bash
# The main job on the embedded default: a throw-away SQLite store with a local key file,
# loaded with examples/aphiria/, a walkthrough (`env ls`, `env get` masked, `env history`,
# `run`, the audit log), then `strongroom serve` on it (API and web console) with a one-time admin token.
# STRONGROOM_DEMO_SERVE=0 stops after the walkthrough; STRONGROOM_DEMO_PORT picks the port.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${STRONGROOM_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/strongroom" ] || [ "$root/pyproject.toml" -nt "$venv/.installed" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e "$root"
  touch "$venv/.installed"
fi
sr="$venv/bin/strongroom"
export STRONGROOM_HOME
STRONGROOM_HOME="$(mktemp -d "${TMPDIR:-/tmp}/strongroom-demo.XXXXXX")"
trap 'rm -rf "$STRONGROOM_HOME"' EXIT
unset STRONGROOM_STORE STRONGROOM_MASTER_KEY STRONGROOM_PASSPHRASE STRONGROOM_PASSPHRASE_FILE

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
step "$sr" init
step "$sr" env init aphiria.com/base -f "$root/examples/aphiria/environments/base.yaml"
step "$sr" env init aphiria.com/Preview -f "$root/examples/aphiria/environments/Preview.yaml"
step "$sr" env init aphiria.com/Production -f "$root/examples/aphiria/environments/Production.yaml"
# A fresh 32-byte token, piped in so that it never shows on a command line.
printf '\n\033[1m$ %s\033[0m\n' "openssl rand -hex 32 | strongroom env set aphiria.com/Preview pulumiConfig.\"prometheus:authToken\" --secret -f -"
"$venv/bin/python" -c 'import secrets; print(secrets.token_hex(32), end="")' \
  | "$sr" env set aphiria.com/Preview pulumiConfig."prometheus:authToken" --secret -f -
step "$sr" env tag aphiria.com/Preview stable
step "$sr" env ls
step "$sr" env get aphiria.com/Preview
step "$sr" env history aphiria.com/Preview
step "$sr" catalog ls
step "$sr" env diff aphiria.com/Preview@1 aphiria.com/Preview@2
step "$sr" run aphiria.com/Preview -- sh -c 'echo "the API would start with DB_USER=$DB_USER and PROMETHEUS_AUTH_TOKEN=$PROMETHEUS_AUTH_TOKEN"'
step "$sr" audit ls --env aphiria.com/Preview

if [ "${STRONGROOM_DEMO_SERVE:-1}" = "0" ]; then
  printf '\nThe store lived in %s and is removed now.\n' "$STRONGROOM_HOME"
  exit 0
fi

# The server on the same store: a one-time admin token, then `strongroom serve` until Ctrl-C.
port="${STRONGROOM_DEMO_PORT:-8800}"
token="$("$sr" token create --name demo-admin --role admin --expires 1d 2>/dev/null)"
printf '\n\033[1mStrongroom is serving the example at http://127.0.0.1:%s\033[0m\n' "$port"
printf 'One-time admin token (shown only now; it expires in a day):\n\n    %s\n\n' "$token"
printf 'The web console: open http://127.0.0.1:%s/ in a browser and sign in with the token above.\n\n' "$port"
printf 'Try it from another terminal:\n\n'
printf '    export STRONGROOM_URL=http://127.0.0.1:%s STRONGROOM_TOKEN=<the token above>\n' "$port"
printf '    %s env get aphiria.com/Preview\n' "$sr"
printf '    curl -s -H "Authorization: token $STRONGROOM_TOKEN" http://127.0.0.1:%s/api/esc/environments/default\n\n' "$port"
printf 'Ctrl-C stops the server and removes the throw-away store.\n\n'
"$sr" serve --port "$port"

