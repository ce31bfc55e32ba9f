"""How `env ls` and `env get` grow with the size of a SQLite store (1,000 / 10,000 / 100,000 environments).

One store grows through the three sizes; at each size, in-process and on random
environments/projects:

- ls first page:   Service.list_environments(limit=1000) (what `env ls` fetches first)
- ls --project P:  Service.list_environments(project=P, limit=1000), a project of 10 environments
- get:             Service.read(ENV), a whole 50-value environment, masked
- ls (all names):  the `env ls` loop, pages of 1,000 by keyset (after=last ref) until the end;
                   linear by nature, since it returns every name

Filling: every environment goes through SqliteStore.create_environment, one transaction
each (as `env init` writes), with rows exactly as Service.create_environment would make
them (common.fill re-encrypts a template's secrets under each environment's own data
key). On the 2-core machine this writes 4,000-5,000 environments a second, so 100,000
take 20-25 s (the figure is printed) and no executemany shortcut is needed. The fill
writes no audit records (Store.create_environment's audit events default to none).
Each size's new environments are inserted in shuffled order, as a real store grows.

Then EXPLAIN QUERY PLAN of the SQL SqliteStore really runs (captured with the sqlite3
trace callback, so the plans cannot drift from the code) for get_environment,
get_revision (newest and by number) and list_environments (project + limit, keyset page).

Run:  /tmp/venv/bin/python bench/scale.py [--quick]
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import common

from strongroom.model import EnvRef, RevisionRef
from strongroom.service import Service
from strongroom.storage.sqlite import SqliteStore

PAGE = 1000  # the page size `env ls` uses


def list_all(service: Service) -> int:
    """`env ls` without --project: every name, page by page (keyset pagination)."""
    after: EnvRef | None = None
    names: list[str] = []
    while True:
        page = service.list_environments(after=after, limit=PAGE)
        names.extend(str(rec.ref) for rec in page)
        if len(page) < PAGE:
            return len(names)
        after = page[-1].ref


def cycling(fn: Callable[[object], object], args: list[object]) -> Callable[[], object]:
    it = itertools.cycle(args)
    return lambda: fn(next(it))


def captured_sql(store: SqliteStore, call: Callable[[], object]) -> list[str]:
    """The statements (parameters inlined by SQLite) that ``call`` runs on the store's connection."""
    conn = store._conn  # the store's own connection: the plans are of the SQL it really runs
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        call()
    finally:
        conn.set_trace_callback(None)
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")]


def print_plans(store: SqliteStore, path: Path, size: int) -> None:
    rng = random.Random(3)
    ref = common.env_ref(rng.randrange(size))
    project = common.project_of(rng.randrange(size))
    after = common.env_ref(size // 2)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("get_environment(ref)", lambda: store.get_environment(ref)),
        ("get_revision(ref) (newest)", lambda: store.get_revision(ref)),
        ("get_revision(ref, 1)", lambda: store.get_revision(ref, 1)),
        ("list_environments(project=P, limit=1000)", lambda: store.list_environments(project=project, limit=PAGE)),
        ("list_environments(after=REF, limit=1000)", lambda: store.list_environments(after=after, limit=PAGE)),
        ("list_environments(limit=1000)", lambda: store.list_environments(limit=PAGE)),
    ]
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        print(f"EXPLAIN QUERY PLAN of the SQL SqliteStore runs (store of {size:,} environments)")
        print()
        for label, call in cases:
            for sql in captured_sql(store, call):
                plan = reader.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
                details = [str(row[3]) for row in plan]
                full_scan = any(d.startswith("SCAN") and "INDEX" not in d for d in details)
                temp_sort = any("TEMP B-TREE" in d for d in details)
                index_scan = any(d.startswith("SCAN") and "INDEX" in d for d in details)
                if full_scan:
                    verdict = "FULL TABLE SCAN"
                elif temp_sort:
                    verdict = "index look-up, but sorts in a temp b-tree"
                elif index_scan:
                    verdict = "index-order scan (no sort), stops at LIMIT"
                else:
                    verdict = "index look-ups only"
                print(f"{label}: {verdict}")
                print(f"  sql:  {' '.join(sql.split())}")
                for d in details:
                    print(f"  plan: {d}")
                print()
    finally:
        reader.close()


def main() -> None:
    args = common.parse_args(__doc__.splitlines()[0])
    if args.quick:
        sizes, page_runs, lookups, full_runs = [200, 2000], 10, 50, 2
    else:
        sizes, page_runs, lookups, full_runs = [1_000, 10_000, 100_000], 50, 500, 5
    started = time.perf_counter()
    print("# bench/scale.py: env ls / env get against store size (SQLite)" + (" (--quick)" if args.quick else ""))
    common.print_machine()
    print(
        f"runs per size: ls first page x{page_runs}, ls --project x{lookups}, get x{lookups}, "
        f"ls (all names) x{full_runs}; random environment/project each call; median ms"
    )
    print()
    results: dict[int, dict[str, float]] = {}
    with common.temp_dir() as tmp:
        path = Path(tmp) / "store.db"
        store = SqliteStore.open(path, create=True)
        try:
            service = common.make_service(store)
            template = common.make_template(service)
            filled = common.FIRST_FILL_INDEX
            rng = random.Random(20261129)
            for size in sizes:
                batch = list(range(filled, size))
                rng.shuffle(batch)
                took = common.fill(store, service.keyring(), template, batch)
                filled = size
                megabytes = path.stat().st_size / 1e6
                print(
                    f"filled to {size:,} environments: +{len(batch):,} in {took:.1f} s "
                    f"({len(batch) / took:,.0f}/s), store.db {megabytes:,.0f} MB"
                )
                refs: list[object] = [RevisionRef(common.env_ref(rng.randrange(size))) for _ in range(lookups)]
                projects: list[object] = [common.project_of(rng.randrange(size)) for _ in range(lookups)]
                if len(service.list_environments(project=str(projects[0]), limit=PAGE)) != common.ENVS_PER_PROJECT:
                    raise RuntimeError("a project does not hold the expected number of environments")
                if list_all(service) != size:
                    raise RuntimeError("env ls did not list every environment")
                results[size] = {
                    "ls first page (limit=1000)": common.percentile(
                        common.measure(lambda: service.list_environments(limit=PAGE), page_runs), 50
                    ),
                    "ls --project P (10 envs)": common.percentile(
                        common.measure(
                            cycling(lambda p: service.list_environments(project=str(p), limit=PAGE), projects),
                            lookups,
                        ),
                        50,
                    ),
                    "get (masked, 50 values)": common.percentile(
                        common.measure(cycling(lambda r: service.read(r), refs), lookups), 50
                    ),
                    "ls all names (linear by nature)": common.percentile(
                        common.measure(lambda: list_all(service), full_runs, warmup=1), 50
                    ),
                }
            print()
            operations = list(results[sizes[0]])
            headers = ["operation", *(f"{s:,} envs" for s in sizes), f"{sizes[-1] // 1000}k/{sizes[0] // 1000}k"]
            if args.quick:
                headers[-1] = f"{sizes[-1]}/{sizes[0]}"
            rows = []
            for op in operations:
                values = [results[s][op] for s in sizes]
                rows.append([op, *(common.ms(v) for v in values), f"{values[-1] / values[0]:.2f}x"])
            common.print_table(headers, rows, title="median ms per call")
            print_plans(store, path, sizes[-1])
        finally:
            store.close()
    print(f"wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
