"""Shared helpers for the benchmark scripts: options, timing, percentiles, tables, scratch
stores (a temp dir, a scratch PostgreSQL database) and filling a store fast.

The scripts print their figures; nothing here checks a timing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import re
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from strongroom.crypto.format import decrypt_secret, encrypt_secret, new_data_key
from strongroom.crypto.providers import EnvironmentKeyProvider, Keyring, generate_master_key_b64
from strongroom.model import EnvRef
from strongroom.service import Service
from strongroom.storage.base import Store

ROOT = Path(__file__).resolve().parent.parent
#: libpq conninfo of the local PostgreSQL used to create and drop scratch databases.
PG_ADMIN_CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
PG_URL_TEMPLATE = "postgresql://postgres@127.0.0.1:5432/{name}"

#: Shape of every benchmark environment: 50 values under ``values.pulumiConfig``, 10 of them secrets.
VALUES_PER_ENV = 50
SECRETS_PER_ENV = 10
#: Environments per project (``env ls --project P`` returns this many).
ENVS_PER_PROJECT = 10
ACTOR = "bench"


# --------------------------------------------------------------------------- options and output


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a reduced run (for a smoke test)")
    return parser.parse_args()


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between closest ranks."""
    if not samples:
        raise ValueError("no samples")
    data = sorted(samples)
    k = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def ms(seconds: float) -> str:
    """Milliseconds with three significant-ish decimals for small values."""
    value = seconds * 1000.0
    if value < 10:
        return f"{value:.3f}"
    if value < 1000:
        return f"{value:.1f}"
    return f"{value:.0f}"


def measure(fn: Callable[[], object], runs: int, *, warmup: int = 5) -> list[float]:
    """Wall time of ``runs`` calls of ``fn`` in seconds (after ``warmup`` untimed calls)."""
    for _ in range(warmup):
        fn()
    clock = time.perf_counter_ns
    out: list[float] = []
    for _ in range(runs):
        start = clock()
        fn()
        out.append((clock() - start) / 1e9)
    return out


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, title: str | None = None) -> None:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    if title:
        print(title)
    print(line(list(headers)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row))
    print()


def postgres_version() -> str | None:
    """The local PostgreSQL server's version string, or ``None`` when none answers."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_CONNINFO, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except Exception:
        return None
    return None if row is None else f"PostgreSQL {row[0]}"


def strongroom_src() -> Path:
    """The folder the ``strongroom`` package is imported from (``src/`` of the editable install,
    or a snapshot put first on PYTHONPATH)."""
    import strongroom

    return Path(strongroom.__file__).resolve().parent.parent


def code_state() -> str:
    """Which code is measured: the checkout's commit and its uncommitted src/ changes
    (read-only git calls), or the snapshot ``strongroom`` is imported from."""
    git = ["git", "--no-optional-locks", "-C", str(ROOT)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        status = subprocess.run(
            [*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return f"strongroom from {strongroom_src()} (no git checkout at {ROOT})"
    head = commit.stdout.strip()
    if strongroom_src() != (ROOT / "src").resolve():
        return f"strongroom imported from {strongroom_src()} (PYTHONPATH); checkout HEAD is {head}"
    changed = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    if not changed:
        return f"{head} (src/ clean)"
    return f"{head} + uncommitted changes in src/: {', '.join(changed)}"


def print_machine(*, with_postgres: bool = False) -> None:
    print(f"date:      {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"machine:   {os.cpu_count()} cores, {platform.system()} {platform.release()} {platform.machine()}")
    print(f"python:    {platform.python_implementation()} {platform.python_version()} ({sys.executable})")
    print(f"sqlite:    {sqlite3.sqlite_version}")
    print(f"code:      {code_state()}")
    if with_postgres:
        print(f"postgres:  {postgres_version() or 'not reachable at 127.0.0.1:5432'}")
    print()


# --------------------------------------------------------------------------- scratch stores


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    """A temp dir for the run, removed afterwards (everything a script writes goes here)."""
    with tempfile.TemporaryDirectory(prefix="strongroom-bench-") as name:
        yield Path(name)


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    """A freshly created PostgreSQL database (dropped afterwards); yields its store URL."""
    import psycopg
    from psycopg import sql

    name = f"sr_bench_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_CONNINFO, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield PG_URL_TEMPLATE.format(name=name)
    finally:
        with psycopg.connect(PG_ADMIN_CONNINFO, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def make_service(store: Store) -> Service:
    """A service over ``store`` with a fresh master key, wired as ``cli/context.py`` does
    (the keyring from ``EnvironmentKeyProvider``), and the store bound to that key."""
    keyring: Keyring = EnvironmentKeyProvider(generate_master_key_b64()).load()
    service = Service(store, load_keyring=lambda _store: keyring, actor=ACTOR)
    service.initialise_keys()
    return service


# --------------------------------------------------------------------------- filling a store


def env_ref(index: int) -> EnvRef:
    """The ``index``-th benchmark environment: ``project-NNNNN/env-N``, 10 per project."""
    return EnvRef(f"project-{index // ENVS_PER_PROJECT:05d}", f"env-{index % ENVS_PER_PROJECT}")


def project_of(index: int) -> str:
    return env_ref(index).project


def template_definition(values: int = VALUES_PER_ENV, secret_count: int = SECRETS_PER_ENV) -> str:
    """A definition of ``values`` values under ``values.pulumiConfig``, ``secret_count`` of them
    ``fn::secret`` (plaintext, as a person writes it), the rest strings, numbers and booleans."""
    every = max(1, values // max(1, secret_count))
    lines = ["# benchmark environment", "values:", "  pulumiConfig:"]
    made = 0
    for i in range(values):
        key = f'"service-{i // 10:02d}:setting-{i:02d}"'
        if i % every == 0 and made < secret_count:
            made += 1
            lines += [f"    {key}:", f"      fn::secret: bench-secret-{i:02d}-{secrets.token_hex(12)}"]
        elif i % 4 == 1:
            lines.append(f"    {key}: {1000 + i}")
        elif i % 4 == 2:
            lines.append(f"    {key}: {'true' if i % 8 == 2 else 'false'}")
        elif i % 4 == 3:
            lines.append(f"    {key}: https://service-{i:02d}.example.com/api/v{i % 3 + 1}")
        else:
            lines.append(f"    {key}: value-{i:02d}-{secrets.token_hex(4)}")
    return "\n".join(lines) + "\n"


#: A stored secret: ``ciphertext: TOKEN`` under ``fn::secret`` in the definition as stored.
_CIPHERTEXT = re.compile(r"ciphertext:\s*([A-Za-z0-9+/=]+)")
#: ``make_template`` uses the first two indexes (template and check); fills start here.
FIRST_FILL_INDEX = 2


@dataclass(frozen=True, slots=True)
class EnvTemplate:
    """One environment as the service stored it, to copy into many environments fast.

    A copy for another name gets a fresh data key, each secret re-encrypted under it (the
    ciphertext's associated data binds the environment's name), and the name replaced
    wherever the stored text quotes it. ``make_template`` checks a copy against what the
    service itself writes, so a change in the stored format fails loudly instead of
    filling the store with rows the service would not write.
    """

    ref: EnvRef
    definition: str
    compiled: str
    secrets: tuple[tuple[str, str], ...]  # (ciphertext token in the template, plaintext)

    def row(self, keyring: Keyring, ref: EnvRef) -> tuple[bytes, str, str, str]:
        """``(wrapped data key, key id, definition, compiled)`` as
        ``Service.create_environment`` stores them for ``ref`` (fresh data key and nonces)."""
        primary = keyring.primary
        data_key = new_data_key()
        definition, compiled = self.definition, self.compiled
        old_name, new_name = json.dumps(str(self.ref)), json.dumps(str(ref))
        definition = definition.replace(old_name, new_name)
        compiled = compiled.replace(old_name, new_name)
        for token, plaintext in self.secrets:
            fresh = encrypt_secret(data_key, ref, plaintext)
            definition = definition.replace(token, fresh)
            compiled = compiled.replace(token, fresh)
        return primary.wrap(ref, data_key), primary.key_id, definition, compiled


def _without_tokens(text: str, tokens: Iterable[str]) -> str:
    for token in tokens:
        text = text.replace(token, "TOKEN")
    return text


def make_template(service: Service, text: str | None = None) -> EnvTemplate:
    """Create environments 0 and 1 through the service (the real write path); return 0 as a
    template after checking that its copy for 1 matches what the service wrote for 1."""
    text = text or template_definition()
    ref, check_ref = env_ref(0), env_ref(1)
    rev = service.create_environment(ref, text)
    record = service.store.get_environment(ref)
    data_key = service.keyring().get(record.key_id).unwrap(ref, record.data_key)
    tokens = _CIPHERTEXT.findall(rev.definition)
    if len(tokens) != text.count("fn::secret:") or not all(t in rev.compiled for t in tokens):
        raise RuntimeError("the stored format changed: the template's ciphertexts cannot be found")
    template = EnvTemplate(
        ref, rev.definition, rev.compiled, tuple((t, decrypt_secret(data_key, ref, t)) for t in tokens)
    )
    real = service.create_environment(check_ref, text)
    _, _, copy_definition, copy_compiled = template.row(service.keyring(), check_ref)
    real_tokens = _CIPHERTEXT.findall(real.definition)
    copy_tokens = _CIPHERTEXT.findall(copy_definition)
    same_definition = _without_tokens(real.definition, real_tokens) == _without_tokens(copy_definition, copy_tokens)
    same_compiled = _without_tokens(real.compiled, real_tokens) == _without_tokens(copy_compiled, copy_tokens)
    if not (same_definition and same_compiled):
        raise RuntimeError("the stored format changed: a copied environment differs from what the service writes")
    return template


def fill(store: Store, keyring: Keyring, template: EnvTemplate, indexes: Iterable[int]) -> float:
    """Create one environment per index through ``Store.create_environment`` (one transaction
    each, as ``env init`` would). Returns the seconds it took."""
    start = time.perf_counter()
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for i in indexes:
        ref = env_ref(i)
        wrapped, key_id, definition, compiled = template.row(keyring, ref)
        store.create_environment(
            ref, data_key=wrapped, key_id=key_id, definition=definition, compiled=compiled, author=ACTOR, at=at
        )
    return time.perf_counter() - start


# --------------------------------------------------------------------------- whole processes


def time_once(cmd: list[str], env: dict[str, str], *, expect: int = 0) -> float:
    """Seconds one run of ``cmd`` takes; ``RuntimeError`` if it exits with another code than ``expect``."""
    start = time.perf_counter_ns()
    code = subprocess.call(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    took = (time.perf_counter_ns() - start) / 1e9
    if code != expect:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}")
    return took


def time_interleaved(
    commands: dict[str, list[str]], env: dict[str, str], *, runs: int, warmup: int
) -> dict[str, list[float]]:
    """Run every command ``warmup + runs`` times in shuffled rounds (fixed seed); keep the last ``runs``."""
    rng = random.Random(7)
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for round_number in range(warmup + runs):
        order = list(commands)
        rng.shuffle(order)
        for label in order:
            took = time_once(commands[label], env)
            if round_number >= warmup:
                samples[label].append(took)
    return samples


def print_against_baseline(samples: dict[str, list[float]], baseline: str) -> None:
    """A table of runs, min and median per command, and its median over the ``baseline`` command's."""
    bare = statistics.median(samples[baseline])
    rows = []
    for label, values in samples.items():
        median = statistics.median(values)
        rows.append([label, str(len(values)), ms(min(values)), ms(median), f"{median / bare:.1f}x"])
    print_table(("command", "runs", "min ms", "median ms", "median / bare"), rows)
