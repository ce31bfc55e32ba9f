"""Server throughput: authenticated `open` of a 50-value environment over HTTP (audit on), at 1 and
2 workers, against a bare Starlette endpoint served the same way; and `audit verify` over
1,000,000 records.

Load comes from wrk (Debian's `wrk` package) on loopback, bounded in time. Prints its
figures; asserts nothing.

    /tmp/venv/bin/python bench/server.py [--quick]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not start")


def wrk(url: str, *, seconds: int, connections: int, script: Path | None) -> dict[str, float]:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        assert m, out
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": pct("50"), "p99": pct("99"), "non2xx": float(errors.group(1)) if errors else 0.0}


def definition() -> str:
    lines = ["values:", "  app:"]
    for i in range(40):
        lines.append(f"    setting{i:02d}: value-{i}")
    for i in range(10):
        lines.append(f"    secret{i:02d}:")
        lines.append(f"      fn::secret: bench-secret-{i}-{os.urandom(8).hex()}")
    return "\n".join(lines) + "\n"


BARE_APP = textwrap.dedent(
    """
    import json
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    BODY = json.dumps({"value": {f"setting{i:02d}": f"value-{i}" for i in range(50)}}).encode()

    async def endpoint(request):
        return Response(BODY, media_type="application/json")

    app = Starlette(routes=[Route("/bare", endpoint, methods=["GET", "POST"])])
    """
)


def serve_strongroom(env: dict[str, str], workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "strongroom",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "error",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/healthz", proc)
    return proc, url


def serve_bare(folder: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    (folder / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "error",
            "--no-access-log",
        ],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/bare", proc)
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def throughput(args: argparse.Namespace, home: Path) -> None:
    from strongroom.cli.context import AppContext
    from strongroom.model import EnvRef

    key = base64.b64encode(os.urandom(32)).decode()
    env = {**os.environ, "STRONGROOM_HOME": str(home), "STRONGROOM_MASTER_KEY": key, "STRONGROOM_ACTOR": "bench"}
    for name in ("STRONGROOM_STORE", "STRONGROOM_URL", "STRONGROOM_TOKEN", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    subprocess.run([sys.executable, "-m", "strongroom", "init"], env=env, check=True, capture_output=True)
    app = AppContext(env)
    service = app.service()
    service.create_environment(EnvRef("bench", "api"), definition())
    _record, token = service.create_token("bench-opener", "opener")
    app.close()

    script = home / "open.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Authorization"] = "token {token}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        'wrk.body = "{}"\n'
    )
    print(f"load:   wrk -t2 -c{args.connections} -d{args.seconds}s on loopback (2 cores shared by client and server)")
    print("open:   POST /api/v1/environments/bench/api/open (token auth, role check, evaluation, decryption of")
    print("        10 secrets, value HMACs and one audit record per request, SQLite store)")
    print("bare:   a Starlette endpoint returning a 50-value JSON body, same uvicorn and worker count\n")
    rows = []
    for workers in (1, 2):
        proc, url = serve_strongroom(env, workers)
        try:
            check = httpx.post(
                f"{url}/api/v1/environments/bench/api/open", headers={"Authorization": f"token {token}"}, json={}
            )
            assert check.status_code == 200, check.text
            sr = wrk(
                f"{url}/api/v1/environments/bench/api/open",
                seconds=args.seconds,
                connections=args.connections,
                script=script,
            )
        finally:
            stop(proc)
        proc, url = serve_bare(home, workers)
        try:
            bare = wrk(f"{url}/bare", seconds=args.seconds, connections=args.connections, script=None)
        finally:
            stop(proc)
        rows.append((workers, sr, bare))
    print(f"{'workers':>7}  {'endpoint':<22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for workers, sr, bare in rows:
        for name, r in (("strongroom open", sr), ("bare starlette", bare)):
            print(f"{workers:>7}  {name:<22} {r['rps']:>8.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['non2xx']:>8.0f}")
        print(f"{'':>7}  ratio open / bare: {sr['rps'] / bare['rps']:.1%}")
    print("\ntarget: at least 50% of the bare endpoint's throughput")
    verify = AppContext(env).service()
    count, broken = verify.verify_audit()
    print(f"audit chain after the load: {count} records, {'intact' if broken is None else broken}")


def audit_verify(args: argparse.Namespace, home: Path) -> None:
    from strongroom.cli.context import AppContext
    from strongroom.model import AuditEvent

    key = base64.b64encode(os.urandom(32)).decode()
    env = {"STRONGROOM_HOME": str(home / "audit"), "STRONGROOM_MASTER_KEY": key, "STRONGROOM_ACTOR": "bench"}
    app = AppContext(env)
    store = app.open_store(create=True)
    total = args.records
    batch = 20_000
    started = time.perf_counter()
    for start in range(0, total, batch):
        events = [
            AuditEvent(
                at=f"2026-11-29T00:00:00.{i % 1_000_000:06d}Z",
                actor="bench",
                action="read" if i % 3 else "open",
                environment=f"bench/env{i % 1000}",
                revision=1 + i % 7,
                client="127.0.0.1",
                details=(("hmac:values.x", "ab" * 32),) if i % 3 == 0 else (),
            )
            for i in range(start, min(start + batch, total))
        ]
        store.append_audit(events)
    filled = time.perf_counter() - started
    store.close()
    service = app.service()
    started = time.perf_counter()
    count, broken = service.verify_audit()
    elapsed = time.perf_counter() - started
    app.close()
    print(
        f"audit verify: {count:,} records in {elapsed:.1f} s ({count / elapsed:,.0f} records/s), "
        f"{'intact' if broken is None else broken}; filling took {filled:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs, 100,000 audit records")
    args = parser.parse_args()
    args.seconds = 3 if args.quick else 10
    args.connections = 16
    args.records = 100_000 if args.quick else 1_000_000
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    print("# bench/server.py")
    print(f"date:    {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}\n")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=False)
    with tempfile.TemporaryDirectory(prefix="sr-bench-server-") as folder:
        throughput(args, Path(folder))
        print()
        audit_verify(args, Path(folder))
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()
