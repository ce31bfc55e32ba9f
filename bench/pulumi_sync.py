"""The Pulumi bridge: sync 200 pulumiConfig keys (50 secrets) into a stack file.

- a first sync into a new stack file (creates the encryptionsalt, encrypts 50 values);
- a change sync (10 secrets and 10 plain values changed: every managed secret is decrypted
  to compare, the changed ones re-encrypted);
- a no-change re-sync.

Prints seconds of each, the share spent on key derivation (PBKDF2-HMAC-SHA256, 1,000,000
iterations) and checks that it ran once per run, not once per value.

Run:  /tmp/venv/bin/python bench/pulumi_sync.py [--quick]     (--quick: 40 keys, 10 secrets)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import parse_args, print_machine, temp_dir

from strongroom._pulumi_crypto import derive_key
from strongroom.cli.context import AppContext
from strongroom.model import EnvRef, RevisionRef
from strongroom.pulumi import sync_pulumi

PASSPHRASE = "bench-passphrase"
REF = RevisionRef.parse("bench/pulumi")


def definition(keys: int, secrets: int, version: int) -> str:
    config: dict[str, object] = {}
    for i in range(keys):
        changed = version if i % 10 == 0 else 0  # 200 keys: 10 secrets and 10 plain values
        value = f"value-{i:04d}-v{changed}"
        config[f"bench:key{i:04d}"] = {"fn::secret": value} if i % (keys // secrets) == 0 else value
    return json.dumps({"values": {"pulumiConfig": config}})


class Timed:
    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, passphrase: str, salt: bytes) -> bytes:
        start = time.perf_counter()
        try:
            return derive_key(passphrase, salt)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - start


def main() -> None:
    args = parse_args(__doc__ or "")
    keys, secrets = (40, 10) if args.quick else (200, 50)
    print("# bench/pulumi_sync.py: strongroom pulumi sync into a passphrase stack file")
    print_machine()
    print(f"{keys} keys under pulumiConfig, {secrets} of them secrets\n")
    with temp_dir() as tmp:
        environ = {"STRONGROOM_HOME": str(tmp / "home"), "STRONGROOM_ACTOR": "bench"}
        environ["STRONGROOM_MASTER_KEY"] = "YmVuY2gtbWFzdGVyLWtleS0wMDAwMDAwMDAwMDAwMDA="
        AppContext(environ).open_store(create=True).close()
        app = AppContext(environ)
        service = app.service()
        project = tmp / "infra"
        project.mkdir()
        (project / "Pulumi.yaml").write_text("name: bench\nruntime: nodejs\nbackend:\n  url: file://~\n")
        pulumi_env = {"PULUMI_CONFIG_PASSPHRASE": PASSPHRASE}
        service.create_environment(EnvRef.parse("bench/pulumi"), definition(keys, secrets, 0))
        rows = []
        all_once = True
        for label, version in (("first sync (new file)", 0), ("change sync", 1), ("no-change re-sync", 1)):
            if label == "change sync":
                service.replace_definition(EnvRef.parse("bench/pulumi"), definition(keys, secrets, version))
            timed = Timed()
            start = time.perf_counter()
            result = sync_pulumi(service, REF, "bench", cwd=project, environ=pulumi_env, derive=timed)
            total = time.perf_counter() - start
            counts = {k: sum(c.kind == k for c in result.changes) for k in ("added", "changed", "unchanged")}
            all_once = all_once and timed.calls == 1
            rows.append((label, total, timed.seconds, timed.calls, counts))
        app.close()
    print(f"{'run':<24} {'seconds':>8} {'PBKDF2 s':>9} {'share':>6} {'PBKDF2 runs':>12}  keys")
    for label, total, kdf, calls, counts in rows:
        summary = ", ".join(f"{n} {k}" for k, n in counts.items())
        print(f"{label:<24} {total:>8.3f} {kdf:>9.3f} {kdf / total:>6.0%} {calls:>12}  {summary}")
    print()
    print(f"check: PBKDF2 ran once per run: {'yes' if all_once else 'NO'}")
    if not all_once:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
