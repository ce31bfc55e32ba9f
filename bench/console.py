"""Bench: the web console's server time to render the environment list over 1,000 environments
(target p50 <= 50 ms) and an environment page of 200 values (20 of them secrets).

In-process through Starlette's TestClient, signed in as an admin (session cookie, audit on,
SQLite store), so the figures are the server's time plus a few tenths of a millisecond of
ASGI plumbing; no network. Prints p50/p90/p99; asserts nothing.

    /tmp/venv/bin/python bench/console.py [--quick]
"""

from __future__ import annotations

import re

import common
from starlette.testclient import TestClient

from strongroom.model import EnvRef
from strongroom.server.app import create_app
from strongroom.server.config import ServerConfig
from strongroom.storage.base import open_store

TARGET_LIST_P50_MS = 50.0
ENVIRONMENTS = 1000
BIG_VALUES = 200


def main() -> None:
    args = common.parse_args(__doc__ or "")
    runs = 50 if args.quick else 300
    common.print_machine()
    with common.temp_dir() as home:
        store = open_store(None, home, create=True)
        service = common.make_service(store)
        keyring = service.keyring()
        for i in range(ENVIRONMENTS - 1):
            service.create_environment(EnvRef(f"project-{i // 10:03d}", f"env-{i % 10}"), "values:\n  replicas: 2\n")
        big = EnvRef("bench", "big")
        service.create_environment(big, common.template_definition(BIG_VALUES, BIG_VALUES // 10))
        _record, token = service.create_token("bench", "admin")
        app = create_app(ServerConfig(home=home), store=store, load_keyring=lambda _store: keyring)
        client = TestClient(app, base_url="http://testserver")
        page = client.get("/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        signed = client.post("/signin", data={"csrf": csrf.group(1), "token": token}, follow_redirects=False)
        assert signed.status_code == 303

        cases = [
            ("environment list (1,000 environments, first page of 100)", "/environments"),
            ("environment list, search 'env-3' (100 matches)", "/environments?q=env-3"),
            (f"environment page ({BIG_VALUES} values, {BIG_VALUES // 10} secrets)", "/environments/bench/big"),
        ]
        rows = []
        for label, url in cases:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

            def get(url: str = url) -> None:
                client.get(url)

            samples = common.measure(get, runs, warmup=10)
            rows.append(
                (
                    label,
                    common.ms(common.percentile(samples, 50)),
                    common.ms(common.percentile(samples, 90)),
                    common.ms(common.percentile(samples, 99)),
                )
            )
        common.print_table(("render (ms)", "p50", "p90", "p99"), rows, title=f"{runs} requests each")
        print(f"\ntarget: environment list p50 <= {TARGET_LIST_P50_MS:.0f} ms")
        store.close()


if __name__ == "__main__":
    main()
