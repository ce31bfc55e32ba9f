"""In-process latency of `env get` and `env set` on SQLite and PostgreSQL.

Store: 1,000 environments of 50 values each (10 of them secrets). Operations, each on
a random environment:

- get (masked):        Service.read(ENV), the whole environment, secrets masked
- get (show-secrets):  Service.read(ENV, show_secrets=True), the 10 secrets decrypted
- set (one value):     Service.set_value(ENV, PATH, 42), one plain value, a new revision

The store is filled through the Store Protocol (see common.fill); every environment
is exactly what Service.create_environment would write for it. The service is wired
as cli/context.py wires it (EnvironmentKeyProvider keyring, actor, store).

Run:  /tmp/venv/bin/python bench/store.py [--quick]
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from pathlib import Path

import common

from strongroom.model import RevisionRef, Secret
from strongroom.service import Service
from strongroom.storage.base import Store

TARGET_GET_MS = 1.0
SET_PATH = ("pulumiConfig", "service-00:setting-01")


def secrets_in(value: object) -> list[Secret]:
    if isinstance(value, Secret):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in secrets_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in secrets_in(v)]
    return []


def bench_backend(label: str, store: Store, *, envs: int, gets: int, sets: int, rows: list[list[str]]) -> float:
    """Fill ``store``, time the three operations, append table rows; returns the masked-get median (s)."""
    service = common.make_service(store)
    keyring = service.keyring()
    template = common.make_template(service)
    took = common.fill(store, keyring, template, range(common.FIRST_FILL_INDEX, envs))
    print(f"{label}: filled {envs:,} environments in {took:.1f} s ({took / envs * 1000:.2f} ms each)")

    rng = random.Random(20261129)
    # Sanity (not timing): a revealed read really decrypts.
    probe = service.read(RevisionRef(common.env_ref(rng.randrange(envs))), show_secrets=True)
    revealed = secrets_in(probe)
    if len(revealed) != common.SECRETS_PER_ENV or not all(s.revealed for s in revealed):
        raise RuntimeError("show_secrets read did not decrypt every secret")

    def cycling(fn: Callable[[RevisionRef], object], count: int) -> Callable[[], object]:
        refs = itertools.cycle([RevisionRef(common.env_ref(rng.randrange(envs))) for _ in range(count)])
        return lambda: fn(next(refs))

    masked = common.measure(cycling(lambda ref: service.read(ref), gets), gets)
    shown = common.measure(cycling(lambda ref: service.read(ref, show_secrets=True), gets), gets)
    counter = itertools.count(10_000)

    def set_one(ref: RevisionRef, svc: Service = service) -> object:
        return svc.set_value(ref.env, SET_PATH, next(counter))

    written = common.measure(cycling(set_one, sets), sets)
    for name, samples in (
        ("get (masked)", masked),
        ("get (show-secrets)", shown),
        ("set (one value)", written),
    ):
        rows.append(
            [
                label,
                name,
                str(len(samples)),
                common.ms(common.percentile(samples, 50)),
                common.ms(common.percentile(samples, 90)),
                common.ms(common.percentile(samples, 99)),
            ]
        )
    return common.percentile(masked, 50)


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    envs, gets, sets = (100, 100, 30) if args.quick else (1000, 1000, 300)
    print("# bench/store.py: in-process env get / env set latency" + (" (--quick)" if args.quick else ""))
    common.print_machine(with_postgres=True)
    print(
        f"store: {envs:,} environments x {common.VALUES_PER_ENV} values ({common.SECRETS_PER_ENV} secrets); "
        f"{gets} gets and {sets} sets per cell, random environment each call, after 5 warm-up calls"
    )
    print()
    started = time.perf_counter()
    rows: list[list[str]] = []
    with common.temp_dir() as tmp:
        from strongroom.storage.sqlite import SqliteStore

        store = SqliteStore.open(Path(tmp) / "store.db", create=True)
        try:
            sqlite_median = bench_backend("SQLite", store, envs=envs, gets=gets, sets=sets, rows=rows)
        finally:
            store.close()

    if common.postgres_version() is None:
        print("PostgreSQL: skipped, no server answers at 127.0.0.1:5432")
    else:
        from strongroom.storage.sql import SqlAlchemyStore

        with common.scratch_postgres() as url:
            pg_store = SqlAlchemyStore.open(url, create=True)
            try:
                bench_backend("PostgreSQL", pg_store, envs=envs, gets=gets, sets=sets, rows=rows)
            finally:
                pg_store.close()
    print()
    common.print_table(("backend", "operation", "n", "median ms", "p90 ms", "p99 ms"), rows)
    verdict = "met" if sqlite_median * 1000 <= TARGET_GET_MS else "NOT met"
    print(
        f"target: median get (masked) of one {common.VALUES_PER_ENV}-value environment <= {TARGET_GET_MS:g} ms "
        f"on SQLite: {common.ms(sqlite_median)} ms, {verdict}"
    )
    print(f"wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
