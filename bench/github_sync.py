"""The GitHub tier against the local GitHub API server with 50 ms added to every request.

- plan and apply of 100 secrets across 5 repositories and 2 deployment environments
  (7 scopes), with the default write budget (80 content-creating requests a minute,
  which the server enforces as GitHub's secondary limit does);
- a no-change re-sync.

Prints the request count and seconds of each, and checks: one public-key fetch per
scope, zero writes on the no-change re-sync, concurrency and writes per window bounded
by the budget (no request refused by the secondary limit).

Run:  /tmp/venv/bin/python bench/github_sync.py [--quick]     (--quick: 40 secrets)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import tempfile
import time
from typing import Any

from strongroom.cli.context import AppContext
from strongroom.model import EnvRef, RevisionRef
from strongroom.testing.github_api import GitHubAPIServer
from strongroom.tiers import github
from strongroom.tiers._github_client import GitHubClient, RetryPolicy, WriteBudget

ENV = EnvRef("bench", "Production")
TOKEN = "ghp_bench_token"
LATENCY = 0.05


class RecordingBudget(WriteBudget):
    """The sync's write budget, remembering when each write's token was returned."""

    def __init__(self, budget: int, window: float) -> None:
        super().__init__(budget, window)
        self.done: list[float] = []

    def release(self, slot: list[float]) -> None:
        super().release(slot)
        self.done.append(time.monotonic())


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def definition(total: int) -> tuple[str, list[str]]:
    scopes: list[tuple[str, str | None]] = [(f"acme/repo{i}", None) for i in range(5)]
    scopes += [("acme/repo0", "staging"), ("acme/repo0", "production")]
    values: dict[str, Any] = {}
    repos: dict[str, Any] = {}
    keys = []
    for i in range(total):
        repo, environment = scopes[i % len(scopes)]
        name = f"SECRET_{i:03d}"
        values[f"v{i}"] = {"fn::secret": base64.b64encode(os.urandom(24)).decode()}
        body = repos.setdefault(repo, {"secrets": {}, "environments": {}})
        target = body["environments"].setdefault(environment, {}) if environment else body["secrets"]
        target[name] = f"${{ci.v{i}}}"
        keys.append(f"{repo}:{environment}" if environment else repo)
    return json.dumps({"values": {"ci": values, "githubSecrets": {"repositories": repos}}}), sorted(set(keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="40 secrets instead of 100")
    parser.add_argument("--budget", type=int, default=80, help="writes per minute (default 80)")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    total = 40 if args.quick else 100

    with tempfile.TemporaryDirectory() as home, GitHubAPIServer(latency=LATENCY) as server:
        environ = {
            "STRONGROOM_HOME": home,
            "STRONGROOM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "STRONGROOM_ACTOR": "bench",
        }
        AppContext(environ).open_store(create=True).close()
        app = AppContext(environ)
        service = app.service()
        api = server.api
        api.add_organization("acme")
        for i in range(5):
            api.add_repository(f"acme/repo{i}", environments=["staging", "production"] if i == 0 else [])
        api.add_token(TOKEN, scopes={"repo"})
        text, scopes = definition(total)
        service.create_environment(ENV, text)
        ref = RevisionRef(ENV)
        retry = RetryPolicy()

        def client(budget: WriteBudget) -> GitHubClient:
            return GitHubClient(server.url, TOKEN, budget=budget, retry=retry)

        print(
            f"GitHub sync: {total} secrets, {len(scopes)} scopes (5 repositories, 2 environments), "
            f"{LATENCY * 1000:.0f} ms per request, budget {args.budget}/min, concurrency {args.concurrency}"
        )
        rows = []

        budget = RecordingBudget(args.budget, 60.0)
        with client(budget) as c:
            api.clear_requests()
            started = time.perf_counter()
            revision, projection = github._open_projection(service, ref)
            plan = github.plan_github_sync(service, ref, c, projection, revision)
            rows.append(("plan", len(api.requests), time.perf_counter() - started, 0))
            api.clear_requests()
            started = time.perf_counter()
            outcomes = github.apply_github_sync(service, plan, c, concurrency=args.concurrency)
            apply_seconds = time.perf_counter() - started
            apply_requests = list(api.requests)
            rows.append(("apply", len(apply_requests), apply_seconds, api.count_requests("PUT")))
            max_writes_in_flight = c.stats.max_writes_in_flight
        key_fetches = api.count_requests("GET", r"/public-key$")
        refused = api.count_requests("PUT") - total
        created = sum(1 for o in outcomes if o.result == "created")

        with client(WriteBudget(args.budget, 60.0)) as c:
            api.clear_requests()
            started = time.perf_counter()
            revision, projection = github._open_projection(service, ref)
            plan = github.plan_github_sync(service, ref, c, projection, revision)
            again = github.apply_github_sync(service, plan, c, concurrency=args.concurrency)
            rows.append(("no-change re-sync", len(api.requests), time.perf_counter() - started, 0))
        rewrites = api.count_requests("PUT") + api.count_requests("DELETE")
        unchanged = sum(1 for o in again if o.result == "unchanged")
        app.close()

    print("\n| step | requests | writes | seconds |\n|---|---:|---:|---:|")
    for name, requests, seconds, writes in rows:
        print(f"| {name} | {requests} | {writes} | {seconds:.2f} |")
    window_peak = max_in_window(budget.done, 60.0)
    checks = [
        (f"all {total} created, decrypted by the server", created == total),
        (f"public-key fetches: {key_fetches} for {len(scopes)} scopes (one per scope)", key_fetches == len(scopes)),
        (f"writes on the no-change re-sync: {rewrites} ({unchanged} unchanged)", rewrites == 0),
        (
            f"max writes in flight: {max_writes_in_flight} (concurrency {args.concurrency})",
            max_writes_in_flight <= args.concurrency,
        ),
        (f"max writes in any 60 s window: {window_peak} (budget {args.budget})", window_peak <= args.budget),
        (f"writes refused by the secondary limit: {refused}", refused == 0),
    ]
    print()
    for text, ok in checks:
        print(f"[{'ok' if ok else 'FAIL'}] {text}")
    if not all(ok for _t, ok in checks):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
