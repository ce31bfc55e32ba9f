"""Syncing many Kubernetes Secrets: the first sync, a no-change re-sync, a one-value change.

Against strongroom.testing.kube_api.KubeAPIServer with 20 ms added to every request, through the
production client (lightkube, from a kubeconfig). 500 Secrets (3 keys each) across 50 namespaces,
one Secret declaration per target. The first sync is run twice in the same process: with the
default bounded concurrency (16 threads) and one request at a time (concurrency 1).

Run:  /tmp/venv/bin/python bench/kubernetes_sync.py [--quick]
Target: the first sync of 500 Secrets within 5 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from strongroom.testing.kube_api import KubeAPIServer
from strongroom.tiers._kube_client import KubeClient
from strongroom.tiers._kube_projection import SecretSpec
from strongroom.tiers.kubernetes import (
    DEFAULT_CONCURRENCY,
    SyncOptions,
    apply_kubernetes_sync,
    plan_kubernetes_sync,
)

LATENCY = 0.020
ENVIRONMENT = "bench/Prod"


def specs(secrets: int, namespaces: int, changed: int | None = None) -> list[SecretSpec]:
    out = []
    for i in range(secrets):
        password = f"password-{i}" + ("-rotated" if i == changed else "")
        data = {"DB_USER": b"app", "DB_PASSWORD": password.encode(), "API_TOKEN": f"token-{i}".encode()}
        out.append(SecretSpec(f"secret-{i}", (f"bench-{i % namespaces}",), data=data))
    return out


def sync(server: KubeAPIServer, client: KubeClient, declared: list[SecretSpec], key: bytes, concurrency: int):
    server.api.clear_requests()
    options = SyncOptions(concurrency=concurrency)
    start = time.perf_counter()
    plan = plan_kubernetes_sync(client, declared, key=key, environment=ENVIRONMENT, revision=1, options=options)
    outcomes = apply_kubernetes_sync(client, plan, key=key, options=options)
    seconds = time.perf_counter() - start
    assert all(o.ok for o in outcomes), [o for o in outcomes if not o.ok][:3]
    requests = len(server.api.requests)
    writes = len(server.api.write_requests)
    return seconds, requests, writes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 Secrets across 10 namespaces")
    args = parser.parse_args()
    secrets, namespaces = (100, 10) if args.quick else (500, 50)
    key = os.urandom(32)
    rows: list[tuple[str, float, int, int]] = []
    with KubeAPIServer(latency=LATENCY) as server, tempfile.TemporaryDirectory() as tmp:
        kubeconfig = server.write_kubeconfig(Path(tmp) / "kubeconfig")

        def fresh_cluster() -> None:
            server.api.reset()
            server.api.latency = LATENCY
            for n in range(namespaces):
                server.api.create_namespace(f"bench-{n}")

        client = KubeClient.connect(str(kubeconfig))
        try:
            fresh_cluster()
            rows.append(
                (
                    f"first sync (concurrency {DEFAULT_CONCURRENCY})",
                    *sync(server, client, specs(secrets, namespaces), key, DEFAULT_CONCURRENCY),
                )
            )
            rows.append(
                ("no-change re-sync", *sync(server, client, specs(secrets, namespaces), key, DEFAULT_CONCURRENCY))
            )
            rows.append(
                (
                    "sync after one value changes",
                    *sync(server, client, specs(secrets, namespaces, changed=7), key, DEFAULT_CONCURRENCY),
                )
            )
            fresh_cluster()
            rows.append(("first sync (concurrency 1)", *sync(server, client, specs(secrets, namespaces), key, 1)))
        finally:
            client.close()
    print(f"Kubernetes sync: {secrets} Secrets across {namespaces} namespaces, {LATENCY * 1000:.0f} ms per request")
    print(f"{'scenario':<36} {'seconds':>8} {'requests':>9} {'writes':>7}")
    for name, seconds, requests, writes in rows:
        print(f"{name:<36} {seconds:>8.2f} {requests:>9} {writes:>7}")
    first = rows[0][1]
    print(
        f"target: first sync <= 5 s: {'met' if first <= 5 else 'NOT met'} ({first:.2f} s); "
        f"speed-up over one request at a time: {rows[3][1] / first:.1f}x"
    )


if __name__ == "__main__":
    main()
