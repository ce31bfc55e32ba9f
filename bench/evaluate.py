"""Opening an environment and running a command in it: `Service.open`, `env get`, `strongroom run`.

1. In-process, on SQLite, an environment with three levels of imports (base <- mid <- top)
   and 200 values in all, 20 of them secrets and 50 of them references, spread over the
   three:
   - Service.open(top):          what `env open` and `strongroom run` do (3 revisions read,
                                 3 data keys unwrapped, 20 secrets decrypted, value HMACs,
                                 one audit record written)
   - Service.read_value(top):    what `env get` does (masked: no key, no decryption; audited)
   - language.evaluate(top):     the evaluator alone, from Compiled objects already decoded
                                 from the cache (load is a dict look-up), decrypt stubbed,
                                 and masked (decrypt=None)
2. Whole process: `strongroom run TOP -- true` against `python -c pass` (same interpreter),
   interleaved in shuffled rounds. Before measuring, `python -m compileall -q src` compiles
   Strongroom's sources and the children run with PYTHONDONTWRITEBYTECODE unset, as after a
   pip install.
3. Masking throughput: a log-like file (100 MB; 10 MB with --quick) piped through
   `strongroom run MASKING -- cat FILE` (an environment of 50 secrets, random 32-hex tokens,
   20 of which occur in the file) against `cat FILE` alone; output to /dev/null. The masked
   output is checked once (no secret left, one [secret] per occurrence).

Run:  /tmp/venv/bin/python bench/evaluate.py [--quick]
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import common

from strongroom.cli.context import AppContext
from strongroom.crypto.providers import generate_master_key_b64
from strongroom.model import EnvRef, RevisionRef
from strongroom.service import Service

TARGET_OPEN_MS = 5.0
TARGET_MASK_MBPS = 50.0
BASE, MID, TOP = EnvRef("bench", "base"), EnvRef("bench", "mid"), EnvRef("bench", "top")
MASKING = EnvRef("bench", "masking")
# Leaves per environment: (plain, secrets, references); 200 values, 20 secrets, 50 references.
SHAPE = {BASE: (63, 7, 0), MID: (38, 7, 20), TOP: (29, 6, 30)}
ENV_VARS = 10  # of TOP's references, this many are environmentVariables
MASKING_SECRETS, SECRETS_IN_DATA = 50, 20


# --------------------------------------------------------------------------- definitions


def build_definitions(rng: random.Random) -> dict[EnvRef, str]:
    """base <- mid <- top: each a section of its own values, references to what it imports."""
    texts: dict[EnvRef, str] = {}
    reachable: list[tuple[str, str]] = []  # (section, key) of values defined so far (references point at them)
    previous: EnvRef | None = None
    for ref, (plain, secret_count, references) in SHAPE.items():
        section = ref.name
        lines = [f"# benchmark: {ref}"]
        if previous is not None:
            lines += ["imports:", f"  - {previous}"]
        lines += ["values:", f"  {section}:"]
        mine: list[tuple[str, str]] = []
        kinds = ["secret"] * secret_count + ["plain"] * plain
        rng.shuffle(kinds)
        for i, kind in enumerate(kinds):
            key = f"setting-{i:03d}"
            if kind == "secret":
                lines += [f"    {key}:", f"      fn::secret: {section}-secret-{i:03d}-{rng.randbytes(12).hex()}"]
            elif i % 4 == 1:
                lines.append(f"    {key}: {1000 + i}")
            elif i % 4 == 2:
                lines.append(f"    {key}: {'true' if i % 8 == 2 else 'false'}")
            elif i % 4 == 3:
                lines.append(f"    {key}: https://{section}-{i:03d}.example.com/api/v{i % 3 + 1}")
            else:
                lines.append(f"    {key}: value-{i:03d}-{rng.randbytes(4).hex()}")
            mine.append((section, key))
        own_refs = references - (ENV_VARS if ref == TOP else 0)
        for j in range(own_refs):
            a, b = rng.choice(reachable), rng.choice(reachable)
            if j % 2:
                lines.append(f"    ref-{j:03d}: ${{{a[0]}.{a[1]}}}")
            else:
                lines.append(f"    ref-{j:03d}: https://${{{a[0]}.{a[1]}}}/x?y=${{{b[0]}.{b[1]}}}")
        if ref == TOP:
            lines.append("  environmentVariables:")
            for j in range(ENV_VARS):
                a = rng.choice(reachable + mine)
                lines.append(f"    VAR_{j:02d}: ${{{a[0]}.{a[1]}}}")
        reachable += mine
        texts[ref] = "\n".join(lines) + "\n"
        previous = ref
    return texts


def masking_definition(tokens: list[str]) -> str:
    lines = ["values:", "  tokens:"]
    for i, token in enumerate(tokens):
        lines += [f"    t{i:02d}:", f"      fn::secret: {token}"]
    lines += ["  environmentVariables:", "    FIRST_TOKEN: ${tokens.t00}"]
    return "\n".join(lines) + "\n"


def shape_of(value: object) -> tuple[int, int]:
    """(leaves, secret leaves) of an evaluated value."""
    leaves = secrets = 0
    stack = [(value, False)]
    while stack:
        node, inherited = stack.pop()
        secret = node.secret or inherited  # type: ignore[attr-defined]
        inner = node.value  # type: ignore[attr-defined]
        if isinstance(inner, dict):
            stack.extend((c, secret) for c in inner.values())
        elif isinstance(inner, list):
            stack.extend((c, secret) for c in inner)
        else:
            leaves += 1
            secrets += secret
    return leaves, secrets


# --------------------------------------------------------------------------- 1. in-process


def in_process(service: Service, runs: int) -> list[list[str]]:
    from strongroom.language import Compiled, evaluate

    ref = RevisionRef(TOP)
    value, ev = service.open(ref)
    if ev.diagnostics:
        raise RuntimeError(f"unexpected diagnostics: {[str(d) for d in ev.diagnostics]}")
    leaves, secret_leaves = shape_of(value)
    definitions = {env: service.resolve(RevisionRef(env)) for env in SHAPE}
    ref_values = sum(line.count("${") > 0 for rev in definitions.values() for line in rev.definition.splitlines())
    written_refs = sum(rev.definition.count("${") for rev in definitions.values())
    written_secrets = sum(rev.definition.count("fn::secret") for rev in definitions.values())
    print(
        f"environment: {TOP} <- {MID} <- {BASE}: {leaves} values after merging, {written_secrets} written "
        f"as fn::secret, {ref_values} values are references ({written_refs} ${{...}} in all); "
        f"{secret_leaves} values are secret (references to secrets are secret too)"
    )

    compiled = {str(env): Compiled.from_json(rev.compiled) for env, rev in definitions.items()}

    def load(name: str) -> tuple[str, Compiled]:
        return name, compiled[name]

    context = {"actor": "bench", "pulumi": {"user": {"login": "bench"}, "organization": {"login": "default"}}}

    def stub_decrypt(_env: str, token: str) -> str:
        return token[:32]

    def bare(decrypt: Callable[[str, str], str] | None) -> Callable[[], object]:
        return lambda: evaluate(str(TOP), compiled[str(TOP)], load=load, decrypt=decrypt, providers={}, context=context)

    cases: list[tuple[str, Callable[[], object]]] = [
        ("Service.open (env open / run)", lambda: service.open(ref)),
        ("Service.read_value masked (env get)", lambda: service.read_value(ref)),
        ("language.evaluate, decrypt stubbed", bare(stub_decrypt)),
        ("language.evaluate, masked", bare(None)),
    ]
    rows = []
    medians = {}
    for label, fn in cases:
        samples = common.measure(fn, runs, warmup=10)
        medians[label] = statistics.median(samples)
        rows.append(
            [
                label,
                str(len(samples)),
                common.ms(common.percentile(samples, 50)),
                common.ms(common.percentile(samples, 90)),
                common.ms(common.percentile(samples, 99)),
            ]
        )
    common.print_table(("operation", "n", "median ms", "p90 ms", "p99 ms"), rows)
    opened = medians["Service.open (env open / run)"] * 1000
    print(
        f"target: median Service.open of the 3-level, 200-value environment <= {TARGET_OPEN_MS:g} ms: "
        f"{opened:.2f} ms, {'met' if opened <= TARGET_OPEN_MS else 'NOT met'}"
    )
    print()
    return rows


# --------------------------------------------------------------------------- 2. whole process


def child_environment(home: Path, key: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STRONGROOM_") and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME")
    }
    env.update({"STRONGROOM_HOME": str(home), "STRONGROOM_MASTER_KEY": key, "STRONGROOM_ACTOR": "bench"})
    return env


def strongroom_command() -> tuple[list[str], str]:
    script = Path(sys.executable).parent / "strongroom"
    if script.exists():
        shebang = script.read_text(encoding="utf-8").splitlines()[0]
        return [str(script)], f"console script {script} ({shebang})"
    return [sys.executable, "-m", "strongroom"], f"{sys.executable} -m strongroom (no console script)"


def whole_process(base: list[str], env: dict[str, str], runs: int, warmup: int) -> dict[str, float]:
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        f"strongroom run {TOP} -- true": [*base, "run", str(TOP), "--", "true"],
        f"strongroom run -i {TOP} -- true": [*base, "run", "-i", str(TOP), "--", "true"],
    }
    check = subprocess.run(
        [*base, "run", str(TOP), "--", "sh", "-c", 'echo "$VAR_00"'], env=env, capture_output=True, check=True
    )
    if not check.stdout.strip():
        raise RuntimeError("strongroom run did not pass the variables")
    samples = common.time_interleaved(commands, env, runs=runs, warmup=warmup)
    common.print_against_baseline(samples, "python -c pass")
    return {label: statistics.median(values) for label, values in samples.items()}


# --------------------------------------------------------------------------- 3. masking throughput

_LEVELS = ["INFO"] * 14 + ["DEBUG"] * 4 + ["WARN", "ERROR"]
_COMPONENTS = ["api", "worker", "scheduler", "auth", "db-pool", "gateway", "billing", "mailer"]
_METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]
_STATUSES = [200, 200, 200, 201, 204, 304, 404, 500]
_PATHS = ["/v1/users", "/v1/orders", "/v1/orders/{id}", "/healthz", "/metrics", "/v1/login", "/v1/invoices"]


def write_log(path: Path, size: int, secrets_in_data: list[str], rng: random.Random) -> tuple[int, int]:
    """A log-like file of about ``size`` bytes; returns (lines, secret occurrences)."""
    occurrences = 0
    start = 1_764_000_000.0
    written = 0
    with path.open("wb") as fh:
        batch: list[str] = []
        i = 0
        while written < size:
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + i * 0.013)) + f".{i % 1000:03d}Z"
            level, comp = rng.choice(_LEVELS), rng.choice(_COMPONENTS)
            rid = f"{rng.getrandbits(64):016x}"
            roll = rng.random()
            if roll < 0.004:
                token = rng.choice(secrets_in_data)
                msg = rng.choice(
                    [
                        f"outgoing request Authorization: Bearer {token}",
                        f"connecting to postgres://app:{token}@db.internal:5432/app",
                        f"retrying with api_key={token} after 429",
                    ]
                )
                occurrences += 1
            elif roll < 0.6:
                method, route, status = rng.choice(_METHODS), rng.choice(_PATHS), rng.choice(_STATUSES)
                msg = (
                    f"{method} {route} status={status} duration_ms={rng.randint(1, 900)} "
                    f"bytes={rng.randint(80, 40000)} user_id={rng.randint(1, 10**6)}"
                )
            elif roll < 0.85:
                took = rng.random() * 10
                msg = f"job {rng.getrandbits(32):08x} finished in {took:.3f}s queue={comp}-{rng.randint(0, 9)}"
            else:
                session = rng.getrandbits(80)
                msg = f"cache miss key=session:{session:020x} ttl={rng.randint(30, 3600)} hit_ratio={rng.random():.4f}"
            line = f"{ts} {level:<5} [{comp}] req={rid} {msg}\n"
            batch.append(line)
            written += len(line)
            i += 1
            if len(batch) >= 10_000:
                fh.write("".join(batch).encode())
                batch.clear()
        fh.write("".join(batch).encode())
    return i, occurrences


def masking(
    base: list[str], env: dict[str, str], tmp: Path, tokens: list[str], size_mb: int, runs: int, startup: float
) -> float:
    import ahocorasick_rs

    rng = random.Random(11)
    big = tmp / "app.log"
    in_data = tokens[:SECRETS_IN_DATA]
    lines, occurrences = write_log(big, size_mb * 1_000_000, in_data, rng)
    size = big.stat().st_size
    print(
        f"data: {size / 1e6:.1f} MB, {lines:,} log lines, "
        f"{occurrences} occurrences of {len(set(in_data))} of the {len(tokens)} secrets"
    )

    # Correctness, once: every occurrence masked, nothing else changed in length.
    masked_out = tmp / "masked.out"
    with masked_out.open("wb") as fh:
        subprocess.run([*base, "run", str(MASKING), "--", "cat", str(big)], env=env, stdout=fh, check=True)
    data = masked_out.read_bytes()
    finder = ahocorasick_rs.BytesAhoCorasick([t.encode() for t in tokens])
    if finder.find_matches_as_indexes(data):
        raise RuntimeError("a secret went through unmasked")
    if data.count(b"[secret]") != occurrences or len(data) != size - occurrences * (32 - len(b"[secret]")):
        raise RuntimeError("masked output is not the input with each secret replaced")
    del data
    masked_out.unlink()

    commands = {
        "cat FILE": ["cat", str(big)],
        f"strongroom run {MASKING} -- cat FILE": [*base, "run", str(MASKING), "--", "cat", str(big)],
    }
    common.time_once(commands["cat FILE"], env)  # page cache
    samples: dict[str, list[float]] = {label: [] for label in commands}
    order_rng = random.Random(3)
    for _ in range(runs):
        order = list(commands)
        order_rng.shuffle(order)
        for label in order:
            samples[label].append(common.time_once(commands[label], env))
    rows = []
    rates = {}
    for label, values in samples.items():
        median = statistics.median(values)
        rates[label] = size / 1e6 / median
        rows.append([label, str(len(values)), f"{median * 1000:.0f}", f"{rates[label]:.0f}"])
    common.print_table(("command (stdout to /dev/null)", "runs", "median ms", "MB/s"), rows)
    masked_rate = rates[f"strongroom run {MASKING} -- cat FILE"]
    print(
        f"ratio: strongroom run is {rates['cat FILE'] / masked_rate:.1f}x slower than cat alone "
        f"(whole process, start-up included)"
    )
    steady = statistics.median(samples[f"strongroom run {MASKING} -- cat FILE"]) - startup
    print(
        f"without start-up (median minus the {startup * 1000:.0f} ms `strongroom run -- true` median): "
        f"{size / 1e6 / steady:.0f} MB/s"
    )
    return masked_rate


# --------------------------------------------------------------------------- main


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    opens, runs, warmup, size_mb, mask_runs = (100, 20, 2, 10, 3) if args.quick else (500, 30, 3, 100, 5)
    started = time.perf_counter()
    print("# bench/evaluate.py: open, env get, strongroom run, masking" + (" (--quick)" if args.quick else ""))
    common.print_machine()
    base, how = strongroom_command()
    print(f"strongroom:   {how}")
    print(f"baseline:     {sys.executable} -c pass")
    src = common.strongroom_src()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True)
    print(f"bytecode:     `python -m compileall -q {src}` run first; children run with PYTHONDONTWRITEBYTECODE unset")

    rng = random.Random(20261129)
    with common.temp_dir() as tmp:
        key = generate_master_key_b64()
        env = child_environment(tmp / "home", key)
        probe = [sys.executable, "-c", "import strongroom; print(strongroom.__file__)"]
        imported = subprocess.run(probe, env=env, capture_output=True, text=True, check=True).stdout.strip()
        print(f"children:     import {imported}")
        print()
        app = AppContext(env)
        app.open_store(create=True).close()
        service = app.service()
        try:
            service.initialise_keys()
            for ref, text in build_definitions(rng).items():
                service.create_environment(ref, text)
            tokens = [rng.randbytes(16).hex() for _ in range(MASKING_SECRETS)]
            service.create_environment(MASKING, masking_definition(tokens))

            print(f"## 1. in-process, SQLite ({opens} calls each after 10 warm-up calls)")
            in_process(service, opens)
        finally:
            app.close()

        print(f"## 2. whole process: `strongroom run {TOP} -- true` ({runs} runs each after {warmup} warm-up rounds)")
        medians = whole_process(base, env, runs, warmup)
        run_ms = medians[f"strongroom run {TOP} -- true"] * 1000
        bare_ms = medians["python -c pass"] * 1000
        ratio = run_ms / bare_ms
        print(f"strongroom run -- true: {run_ms:.1f} ms median, {ratio:.1f}x `python -c pass` ({bare_ms:.1f} ms)")
        print()

        print(f"## 3. masking throughput ({size_mb} MB, {mask_runs} runs each, interleaved)")
        rate = masking(base, env, tmp, tokens, size_mb, mask_runs, run_ms / 1000)
        print(
            f"target: masked output >= {TARGET_MASK_MBPS:g} MB/s: {rate:.0f} MB/s, "
            f"{'met' if rate >= TARGET_MASK_MBPS else 'NOT met'}"
        )
        print()
    print(f"wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
