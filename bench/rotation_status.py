"""Bench: ``rotation status`` over a catalog of 10,000 secrets (500 environments x 20), in-process and as a process.

Target (issue 8): within 1 s. Usage: python bench/rotation_status.py [--quick]
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

from strongroom.cli.context import AppContext
from strongroom.model import EnvRef
from strongroom.rotation.catalog import read_catalog, rotation_status

SCHEDULES = ("annually", "quarterly", "monthly", "every 30d", "0 3 1 * *", "never", "when: provider changes")

_PROCESS = """
import sys
from strongroom.cli import app
app._LAZY["rotation"] = ("strongroom.cli.rotation", "rotation")
sys.argv = ["strongroom", "rotation", "status", "--format", "json"]
app.cli()
"""


def definition(env_index: int, per_env: int) -> str:
    values = "\n".join(f"  s{i}: {{fn::secret: value-{env_index}-{i}}}" for i in range(per_env))
    rotation = "\n".join(
        f"  s{i}: {{purpose: secret {i}, owner: ops, schedule: '{SCHEDULES[i % len(SCHEDULES)]}',"
        f" lastRotated: 2024-0{1 + i % 9}-15}}"
        for i in range(per_env)
    )
    return f"values:\n{values}\nrotation:\n{rotation}\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="50 environments instead of 500")
    args = parser.parse_args()
    envs, per_env = (50, 20) if args.quick else (500, 20)
    with tempfile.TemporaryDirectory() as home:
        environ = {
            **os.environ,
            "STRONGROOM_HOME": home,
            "STRONGROOM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "STRONGROOM_ACTOR": "bench",
        }
        environ.pop("STRONGROOM_URL", None)
        environ.pop("STRONGROOM_STORE", None)
        app = AppContext(environ)
        app.open_store(create=True).close()
        svc = app.service()
        svc.initialise_keys()
        started = time.perf_counter()
        for e in range(envs):
            svc.create_environment(EnvRef("bench", f"env{e:04d}"), definition(e, per_env))
        for e in range(0, envs, 10):  # some rotations recorded in the audit log
            svc.set_value(EnvRef("bench", f"env{e:04d}"), ("s0",), f"rotated-{e}", secret=True)
        took = time.perf_counter() - started
        print(f"setup: {envs} environments x {per_env} = {envs * per_env} secrets in {took:.1f} s")
        now = datetime.now(UTC)
        timings = []
        for _ in range(5):
            t = time.perf_counter()
            found = rotation_status(read_catalog(svc), now, timedelta(days=30))
            timings.append(time.perf_counter() - t)
        overdue = sum(1 for s in found if s.state == "overdue")
        print(
            f"in-process: {len(found)} secrets, {overdue} overdue; best {min(timings) * 1000:.0f} ms, "
            f"median {sorted(timings)[2] * 1000:.0f} ms"
        )
        app.close()
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _PROCESS], env=environ, capture_output=True, check=False)
        elapsed = time.perf_counter() - t
        print(f"whole process: exit {proc.returncode} (3 = overdue found) in {elapsed * 1000:.0f} ms")
        target = "met" if max(min(timings), elapsed) < 1.0 else "MISSED"
        print(f"target 1 s: {target}")


if __name__ == "__main__":
    main()
