"""Whole-process cold start of the CLI against bare Python.

Measures, interleaved in the same run (each round runs every command once, in a
shuffled order), the wall time of:

- `python -c pass`                              the bare interpreter (baseline)
- `strongroom env get aphiria.com/Preview`      masked: no key, no cryptography
- `strongroom env get ... --show-secrets`       loads the key file and cryptography
- `strongroom --version`

through the console script next to the interpreter (the one `pip install` makes),
against a store initialised in a temp STRONGROOM_HOME with examples/aphiria's Preview
environment. Before measuring, `python -m compileall -q src` compiles Strongroom's
sources (the src/ folder the package is imported from), and the children run with
PYTHONDONTWRITEBYTECODE unset: a real `pip install` leaves .pyc files, so start-up is
measured from bytecode as users get it.
Then `-X importtime` of `env get` shows where start-up goes.

Run:  /tmp/venv/bin/python bench/cli_startup.py [--quick]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common

TARGET_MS = 150.0
TARGET_RATIO = 5.0
ENV = "aphiria.com/Preview"


def example_dir() -> Path:
    """examples/aphiria/environments next to the src/ being measured (a snapshot's own
    examples when PYTHONPATH points at one), else the checkout's."""
    for root in (common.strongroom_src().parent, common.ROOT):
        folder = root / "examples" / "aphiria" / "environments"
        if (folder / "Preview.yaml").exists():
            return folder
    raise RuntimeError("examples/aphiria/environments/Preview.yaml not found")


def load_examples(base: list[str], env: dict[str, str]) -> Path:
    """`env init aphiria.com/NAME -f NAME.yaml` for every example, imported ones first
    (a definition that imports one not yet created is retried after the others)."""
    folder = example_dir()
    pending = sorted(folder.glob("*.yaml"))
    while pending:
        failed: list[Path] = []
        last_error = ""
        for path in pending:
            cmd = [*base, "env", "init", f"aphiria.com/{path.stem}", "-f", str(path)]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                failed.append(path)
                last_error = done.stderr.strip()
        if len(failed) == len(pending):
            raise RuntimeError(f"cannot load the aphiria example: {last_error}")
        pending = failed
    return folder


def child_environment(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STRONGROOM_") and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME")
    }
    env["STRONGROOM_HOME"] = str(home)
    return env


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def import_times(cmd: list[str], env: dict[str, str], runs: int) -> list[tuple[str, int, float, float]]:
    """``(module, depth, cumulative s, self s)`` per module: the median over ``runs`` runs of ``-X importtime``."""
    per_module: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _ in range(runs):
        stderr = run([sys.executable, "-X", "importtime", *cmd], env).stderr
        for line in stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cumulative_us, name = line[len("import time:") :].split("|", 2)
            depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
            per_module.setdefault((name.strip(), depth), []).append((int(cumulative_us) / 1e6, int(self_us) / 1e6))
    out = [
        (name, depth, statistics.median(c for c, _ in samples), statistics.median(s for _, s in samples))
        for (name, depth), samples in per_module.items()
    ]
    return sorted(out, key=lambda row: row[2], reverse=True)


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    runs, warmup, importtime_runs = (10, 2, 3) if args.quick else (40, 3, 7)
    started = time.perf_counter()
    print("# bench/cli_startup.py: whole-process cold start" + (" (--quick)" if args.quick else ""))
    common.print_machine()

    src = common.strongroom_src()  # the checkout's src/ (editable install) unless PYTHONPATH points elsewhere
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src)], check=True)
    script = Path(sys.executable).parent / "strongroom"
    if script.exists():
        base = [str(script)]
        shebang = script.read_text(encoding="utf-8").splitlines()[0]
        how = f"console script {script} ({shebang})"
    else:
        base = [sys.executable, "-m", "strongroom"]
        how = f"{sys.executable} -m strongroom (no console script next to the interpreter)"
    print(f"strongroom:   {how}")
    print(f"baseline:     {sys.executable} -c pass")
    print(f"bytecode:     `python -m compileall -q {src}` run first; children run with PYTHONDONTWRITEBYTECODE unset")
    print(f"runs:         {runs} per command after {warmup} warm-up rounds, interleaved in shuffled rounds")

    with common.temp_dir() as tmp:
        env = child_environment(tmp / "home")
        run([*base, "init"], env)
        folder = load_examples(base, env)
        print(f"store:        temp STRONGROOM_HOME with every environment in {folder}")
        print()
        commands: dict[str, list[str]] = {
            "python -c pass": [sys.executable, "-c", "pass"],
            f"strongroom env get {ENV}": [*base, "env", "get", ENV],
            "strongroom env get --show-secrets": [*base, "env", "get", ENV, "--show-secrets"],
            "strongroom --version": [*base, "--version"],
        }
        masked = run(commands[f"strongroom env get {ENV}"], env).stdout
        shown = run(commands["strongroom env get --show-secrets"], env).stdout
        if "[secret]" not in masked or "[secret]" in shown:
            raise RuntimeError("env get output is not what this benchmark expects")

        samples = common.time_interleaved(commands, env, runs=runs, warmup=warmup)
        bare = statistics.median(samples["python -c pass"])
        common.print_against_baseline(samples, "python -c pass")

        get_median = statistics.median(samples[f"strongroom env get {ENV}"])
        ratio = get_median / bare
        print(
            f"target: `strongroom env get` <= {TARGET_MS:g} ms: median {get_median * 1000:.1f} ms, "
            f"{'met' if get_median * 1000 <= TARGET_MS else 'NOT met'}"
        )
        print(
            f"target: `strongroom env get` <= {TARGET_RATIO:g}x bare Python: {ratio:.1f}x "
            f"({get_median * 1000:.1f} / {bare * 1000:.1f} ms), {'met' if ratio <= TARGET_RATIO else 'NOT met'}"
        )
        print()

        table = import_times(commands[f"strongroom env get {ENV}"], env, importtime_runs)
        top_level = sum(c for _, depth, c, _ in table if depth == 0)
        print(
            f"-X importtime of `strongroom env get {ENV}`: top 10 modules by cumulative import time "
            f"(median of {importtime_runs} runs; depth 0 = imported by the script or the interpreter itself)"
        )
        common.print_table(
            ("module", "depth", "cumulative ms", "self ms"),
            [[name, str(depth), common.ms(cum), common.ms(own)] for name, depth, cum, own in table[:10]],
        )
        print(f"all top-level imports together: {top_level * 1000:.1f} ms")
    print(f"wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
