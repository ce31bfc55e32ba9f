"""Rotation end to end: from the start of ``rotate`` until every target carries the new value.

One ``random`` token used by 20 Kubernetes Secrets (in 20 namespaces) and 5 GitHub repository
secrets (in 5 repositories), against the local Kubernetes and GitHub API servers with added
latency (20 ms per Kubernetes request, 50 ms per GitHub request), through the production
clients (lightkube from a kubeconfig, httpx + sealed boxes). The store is SQLite on local disk.

Measured two ways, each repeated and reported as median / min / max:
  * in process: ``RotationEngine.rotate`` with the tier propagator, as ``strongroom rotate`` runs it,
    with the time of each step (observer hooks) — create..finish, propagate;
  * as a process: ``strongroom rotate ENV PATH --yes --kubeconfig F --github-api-url URL`` (includes start-up).
After each run the bench reads every target back from the API servers and checks it holds the new value.

Run:  /tmp/venv/bin/python bench/rotation.py [--runs N] [--k8s-latency S] [--github-latency S]
Target (issue 8): none given; reported.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from strongroom.cli.context import AppContext
from strongroom.model import EnvRef, RevisionRef
from strongroom.rotation.engine import RotationEngine
from strongroom.rotation.propagate import TierPropagator, TierSettings
from strongroom.service import Service
from strongroom.testing.github_api import GitHubAPIServer
from strongroom.testing.kube_api import KubeAPIServer

ENV = EnvRef("bench", "prod")
K8S_SECRETS = 20
GITHUB_SECRETS = 5
TOKEN = "ghp_" + "b" * 36


def definition() -> str:
    kube = "\n".join(
        f"    token-{i}:\n      namespaces: [ns-{i}]\n      data:\n        TOKEN: ${{app.token}}\n        OTHER: x{i}"
        for i in range(K8S_SECRETS)
    )
    repos = "\n".join(
        f"      bench/repo-{i}:\n        secrets:\n          API_TOKEN: ${{app.token}}" for i in range(GITHUB_SECRETS)
    )
    return f"""values:
  app:
    token: {{fn::secret: "{"a" * 64}"}}
  kubernetesSecrets:
{kube}
  githubSecrets:
    repositories:
{repos}
rotation:
  app.token:
    schedule: quarterly
    rotator: {{random: {{bytes: 32, encoding: hex}}}}
"""


def carried_everywhere(kube: KubeAPIServer, gh: GitHubAPIServer, value: str) -> bool:
    kube_ok = all(
        (kube.api.secret_data(f"token-{i}", f"ns-{i}") or {}).get("TOKEN") == value.encode() for i in range(K8S_SECRETS)
    )
    gh_ok = all(gh.api.plaintext(f"bench/repo-{i}", "API_TOKEN") == value for i in range(GITHUB_SECRETS))
    return kube_ok and gh_ok


def summary(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples) * 1000:7.1f} ms  "
        f"min {min(samples) * 1000:7.1f} ms  max {max(samples) * 1000:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--k8s-latency", type=float, default=0.020)
    parser.add_argument("--github-latency", type=float, default=0.050)
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory() as tmp,
        KubeAPIServer(latency=args.k8s_latency) as kube,
        GitHubAPIServer(latency=args.github_latency) as gh,
    ):
        for i in range(K8S_SECRETS):
            kube.api.create_namespace(f"ns-{i}")
        for i in range(GITHUB_SECRETS):
            gh.api.add_repository(f"bench/repo-{i}", id=1000 + i)
        gh.api.add_token(TOKEN, scopes={"repo"})
        kubeconfig = str(kube.write_kubeconfig(Path(tmp) / "kubeconfig"))
        environ = {
            "STRONGROOM_HOME": str(Path(tmp) / "home"),
            "STRONGROOM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode("ascii"),
            "STRONGROOM_ACTOR": "bench",
            "GITHUB_TOKEN": TOKEN,
            "HOME": tmp,
        }
        app = AppContext(environ)
        service = Service(
            app.open_store(create=True),
            load_keyring=lambda s: app.key_provider(s).load(),
            actor="bench",
            clock=lambda: datetime.now(UTC),
        )
        service.initialise_keys()
        service.create_environment(ENV, definition())
        settings = TierSettings(
            kubernetes={"kubeconfig": kubeconfig, "kube_context": None},
            github_api_url=gh.url,
            environ=environ,
        )

        def rotate_in_process() -> tuple[float, float, str]:
            marks: dict[str, float] = {}
            propagator = TierPropagator(service, settings)
            engine = RotationEngine(
                service,
                clock=lambda: datetime.now(UTC),
                propagators=[propagator],
                observe=lambda point: marks.setdefault(point, time.perf_counter()),
            )
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                result = engine.rotate(ENV, "app.token")
            total = time.perf_counter() - start
            assert result.outcome == "done", result
            assert not propagator.failed, propagator.failed
            return (
                total,
                marks["before:propagate"] - start,
                service.read(RevisionRef(ENV), ("app", "token"), show_secrets=True).reveal(),
            )

        # The first rotation creates every target (a first sync); the measured ones update them.
        _total, _before, value = rotate_in_process()
        assert carried_everywhere(kube, gh, value)

        totals, steps, propagate = [], [], []
        kube_writes, gh_writes = [], []
        for _ in range(args.runs):
            kube.api.clear_requests()
            gh.api.clear_requests()
            total, before, value = rotate_in_process()
            assert carried_everywhere(kube, gh, value), "a target does not carry the new value"
            totals.append(total)
            steps.append(before)
            propagate.append(total - before)
            kube_writes.append(len(kube.api.write_requests))
            gh_writes.append(sum(1 for r in gh.requests if r.method == "PUT"))

        process = []
        command = [
            sys.executable,
            "-c",
            "from strongroom.cli import main; main()",
            "rotate",
            str(ENV),
            "app.token",
            "--yes",
            "--kubeconfig",
            kubeconfig,
            "--github-api-url",
            gh.url,
        ]
        for _ in range(max(3, args.runs // 2)):
            start = time.perf_counter()
            done = subprocess.run(command, env={**os.environ, **environ}, capture_output=True, text=True, check=False)
            elapsed = time.perf_counter() - start
            assert done.returncode == 0, done.stderr[-2000:]
            value = service.read(RevisionRef(ENV), ("app", "token"), show_secrets=True).reveal()
            assert carried_everywhere(kube, gh, value)
            process.append(elapsed)
        service.close()

    print(f"rotation of one random token carried by {K8S_SECRETS} Kubernetes Secrets, {GITHUB_SECRETS} GitHub secrets")
    k8s_ms, gh_ms = args.k8s_latency * 1000, args.github_latency * 1000
    print(f"latency added: Kubernetes {k8s_ms:.0f} ms/request, GitHub {gh_ms:.0f} ms/request")
    print(f"runs: {args.runs} in process, {len(process)} as a process; every target checked to hold the new value")
    print(f"  in process, rotate -> all targets carry it: {summary(totals)}")
    print(f"    create..finish (new revision written):   {summary(steps)}")
    print(f"    propagate (20 Secrets + 5 GitHub):       {summary(propagate)}")
    print(f"  as a process (strongroom rotate ...):      {summary(process)}")
    kube_median, gh_median = statistics.median(kube_writes), statistics.median(gh_writes)
    print(f"  writes per rotation: Kubernetes {kube_median:.0f}, GitHub PUTs {gh_median:.0f}")


if __name__ == "__main__":
    main()
