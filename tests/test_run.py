"""``strongroom run``: the output Masker (unit) and the command end to end in real processes.

The end-to-end tests start ``python -m strongroom run ENV -- CMD`` as a real subprocess with
its own STRONGROOM_HOME and master key, so signals, exit codes, pipes and the projected
files folder behave as they do for a user.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from strongroom.runner import MASK_BYTES, MAX_LINE, MIN_SECRET_LENGTH, Masker, RunPlan

MASK = MASK_BYTES.decode()


def canary() -> str:
    return f"CANARY-{uuid.uuid4().hex}"


def mask_all(secrets: list[str], chunks: list[bytes]) -> bytes:
    """What a fresh Masker makes of ``chunks`` fed one after the other, then flushed."""
    masker = Masker(secrets)
    out = bytearray()
    for chunk in chunks:
        out += masker.feed(chunk)
    out += masker.flush()
    return bytes(out)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# =========================================================================== Masker


def test_a_secret_split_across_two_chunks_is_masked_at_every_split_point():
    secret = canary()
    for line in (
        f"token={secret} end\n".encode(),
        f"first line\ntoken={secret}\nlast".encode(),
        f"{secret}".encode(),
        f"{secret}{secret}\n".encode(),
    ):
        expected = line.replace(secret.encode(), MASK_BYTES)
        for cut in range(len(line) + 1):
            out = mask_all([secret], [line[:cut], line[cut:]])
            assert out == expected, (line, cut)


def test_a_secret_split_across_three_chunks_is_masked():
    secret = canary()
    line = f"a {secret} b\n".encode()
    expected = f"a {MASK} b\n".encode()
    for i in range(len(line) + 1):
        for j in range(i, len(line) + 1):
            assert mask_all([secret], [line[:i], line[i:j], line[j:]]) == expected, (i, j)


def test_output_is_released_line_by_line():
    secret = canary()
    masker = Masker([secret])
    assert masker.feed(f"one {secret}\ntwo".encode()) == f"one {MASK}\n".encode()
    assert masker.feed(b" still two") == b""  # an incomplete line is held back
    assert masker.feed(b"\n") == b"two still two\n"
    assert masker.flush() == b""


def test_a_multiline_secret_is_masked_whole_or_line_by_line():
    """A secret containing a newline is masked whole when its text is in the data at hand;
    when the child writes it line by line, each of its lines of 8 characters or more is
    masked on its own, so nothing of it passes in clear."""
    secret = f"-----BEGIN KEY-----\n{uuid.uuid4().hex}\n-----END KEY-----"
    whole = f"key:\n{secret}\nafter\n".encode()
    assert mask_all([secret], [whole]) == f"key:\n{MASK}\nafter\n".encode()
    # Split inside a line: the held-back partial line is completed by the next read.
    inside = whole.index(b"BEGIN") + 2
    assert mask_all([secret], [whole[:inside], whole[inside:]]) == f"key:\n{MASK}\nafter\n".encode()
    # Split right after one of the secret's own newlines: the first line is already out.
    at_newline = whole.index(b"-----\n") + len(b"-----\n")
    split = mask_all([secret], [whole[:at_newline], whole[at_newline:]])
    for line in secret.splitlines():
        assert line.encode() not in split
    assert split.startswith(b"key:\n") and split.endswith(b"\nafter\n")


def test_overlapping_secrets_mask_the_longest():
    short = canary()
    long = short + "-and-more"
    for secrets in ([short, long], [long, short]):
        line = f"x {long} y {short} z\n".encode()
        assert mask_all(secrets, [line]) == f"x {MASK} y {MASK} z\n".encode()
        assert long[len(short) :] not in mask_all(secrets, [line]).decode()
    # One secret inside another (not a prefix): still the longest wins.
    inner = uuid.uuid4().hex
    outer = f"pre-{inner}-post"
    assert mask_all([inner, outer], [f"[{outer}]\n".encode()]) == f"[{MASK}]\n".encode()


def test_secrets_that_overlap_without_containing_each_other_leave_nothing_in_clear():
    left = "left-" + uuid.uuid4().hex[:12] + "-shared"
    right = "-shared-" + uuid.uuid4().hex[:12]
    joined = left[: -len("-shared")] + right  # "left-XXXX-shared-YYYY": left ends where right starts
    assert left in joined and right in joined
    out = mask_all([left, right], [f"{joined}\n".encode()]).decode()
    assert right[len("-shared") :] not in out, out
    assert left[: -len("-shared")] not in out, out


def test_secrets_shorter_than_three_characters_are_not_masked():
    assert MIN_SECRET_LENGTH == 3
    line = b"a ab abc abcd\n"
    assert mask_all(["", "a", "ab"], [line]) == line
    assert mask_all(["ab", "abc"], [line]) == f"a ab {MASK} {MASK}d\n".encode()
    assert Masker([]).feed(b"anything\n") == b"anything\n"


def test_a_five_mib_line_without_newline_is_masked_and_not_held_back_whole():
    secrets = [canary() for _ in range(4)]
    size = 5 * 1024 * 1024
    filler = bytearray(b"x" * size)
    places = [0, size // 3, size // 2 + 17, size - len(secrets[3])]
    for secret, at in zip(secrets, places, strict=True):
        filler[at : at + len(secret)] = secret.encode()
    data = bytes(filler)
    masker = Masker(secrets)
    out = bytearray()
    before_flush = 0
    for chunk in chunked(data, 256 * 1024):
        out += masker.feed(chunk)
        before_flush = len(out)
    out += masker.flush()
    assert before_flush >= size - MAX_LINE - 256 * 1024 - 4 * len(MASK), "the whole line was held back"
    expected = data
    for secret in secrets:
        expected = expected.replace(secret.encode(), MASK_BYTES)
    assert bytes(out) == expected


def _cut_points(total: int, chunk: int, longest: int) -> list[int]:
    """Where a Masker cuts a long line without newlines (found by feeding filler: no match moves them)."""
    masker = Masker(["z" * longest])
    cuts, emitted = [], 0
    for piece in chunked(b"x" * total, chunk):
        emitted += len(masker.feed(piece))
        if emitted and (not cuts or cuts[-1] != emitted):
            cuts.append(emitted)
    return cuts


@pytest.mark.parametrize("chunk", [256 * 1024, 65536, 100_003])
def test_a_secret_straddling_the_long_line_cut_is_masked(chunk):
    secret = canary()
    size = MAX_LINE * 2 + chunk * 2
    cuts = _cut_points(size, chunk, len(secret))
    assert len(cuts) >= 2
    for cut in cuts[:2]:
        for start in range(cut - len(secret) - 1, cut + 2):
            data = b"x" * start + secret.encode() + b"y" * (size - start - len(secret))
            out = mask_all([secret], chunked(data, chunk))
            assert out == b"x" * start + MASK_BYTES + b"y" * (size - start - len(secret)), (chunk, cut, start)


def test_binary_data_without_secrets_passes_through_byte_exact():
    rng = random.Random(11)
    data = rng.randbytes(3 * 1024 * 1024)
    secret = canary()
    assert secret.encode() not in data
    pieces, at = [], 0
    while at < len(data):
        step = rng.choice([1, 7, 4096, 65536, 300_000])
        pieces.append(data[at : at + step])
        at += step
    assert mask_all([secret], pieces) == data
    # With a secret inside, only the secret changes.
    spliced = data[:1000] + secret.encode() + data[1000:]
    assert mask_all([secret], chunked(spliced, 4096)) == data[:1000] + MASK_BYTES + data[1000:]


def test_invalid_utf8_secrets_and_output_are_handled():
    weird = "s\udcffcret-" + uuid.uuid4().hex  # a surrogate, as Python gives undecodable argv bytes
    encoded = weird.encode("utf-8", "surrogatepass")
    assert mask_all([weird], [b"\xff\xfe" + encoded + b"\n"]) == b"\xff\xfe" + MASK_BYTES + b"\n"


def test_five_hundred_secrets():
    secrets = [uuid.uuid4().hex for _ in range(500)]
    lines = [f"{i:04d} request token={s} ok\n".encode() for i, s in enumerate(secrets)]
    data = b"".join(lines)
    out = mask_all(secrets, chunked(data, 4093))
    assert out.count(MASK_BYTES) == 500
    assert not any(s.encode() in out for s in secrets)
    assert out == b"".join(f"{i:04d} request token={MASK} ok\n".encode() for i in range(500))


def test_flush_masks_a_trailing_partial_line():
    secret = canary()
    masker = Masker([secret])
    assert masker.feed(f"done\nlast {secret[:10]}".encode()) == b"done\n"
    assert masker.feed(secret[10:].encode() + b" tail") == b""
    assert masker.flush() == f"last {MASK} tail".encode()
    assert masker.flush() == b""
    assert Masker([secret]).flush() == b""


def test_reprs_do_not_show_secrets():
    secret = canary()
    assert secret not in repr(Masker([secret]))
    plan = RunPlan(argv=["env"], variables={"TOKEN": secret}, files={"F": secret.encode()}, secrets=[secret])
    assert secret not in repr(plan)
    assert "TOKEN" in repr(plan)


# =========================================================================== end to end

TOKEN = canary()
FILE_SECRET = canary()
PLAIN_FILE = "plain file content\nsecond line"

DEFINITION = textwrap.dedent(
    f"""\
    values:
      tok:
        fn::secret: {TOKEN}
      filesecret:
        fn::secret: {FILE_SECRET}
      port: 5432
      enabled: false
      ratio: 1.5
      name: app
      environmentVariables:
        TOK: ${{tok}}
        PORT: ${{port}}
        ENABLED: ${{enabled}}
        RATIO: ${{ratio}}
        APP_NAME: ${{name}}
        OVERRIDDEN: from-strongroom
      files:
        SECRET_FILE: ${{filesecret}}
        PLAIN_FILE: {json.dumps(PLAIN_FILE)}
    """
)
ENV = "proj/run"


@pytest.fixture(scope="module")
def sr(tmp_path_factory):
    """``sr(*args, **popen_kwargs)``: run ``python -m strongroom ARGS`` for real, in a prepared store."""
    home = tmp_path_factory.mktemp("run") / "home"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("STRONGROOM_")}
    environ.update(
        {
            "STRONGROOM_HOME": str(home),
            "STRONGROOM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
            "STRONGROOM_ACTOR": "runner-test",
            "OVERRIDDEN": "from-caller",
            "CALLER_ONLY": "kept",
        }
    )

    class Runner:
        env = environ

        def argv(self, *args: str) -> list[str]:
            return [sys.executable, "-m", "strongroom", *args]

        def __call__(self, *args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
            kw.setdefault("capture_output", True)
            kw.setdefault("stdin", subprocess.DEVNULL)
            kw.setdefault("timeout", 60)
            return subprocess.run(self.argv(*args), env={**environ, **(env or {})}, check=False, **kw)

        def popen(self, *args: str) -> subprocess.Popen:
            # SIGINT back to its default in the strongroom process, whatever the test runner inherited,
            # so the child it starts does not inherit an ignored SIGINT.
            return subprocess.Popen(
                self.argv(*args),
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )

    runner = Runner()
    for args, stdin in ((("init",), None), (("env", "init", ENV, "-f", "-"), DEFINITION)):
        done = runner(*args, input=stdin.encode() if stdin else None, stdin=None if stdin else subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr.decode()
    return runner


def out_of(done: subprocess.CompletedProcess) -> str:
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    return done.stdout.decode()


def py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_variables_reach_the_child_over_the_callers(sr):
    done = sr("run", "-i", ENV, "--", *py("import json, os; print(json.dumps(dict(os.environ)))"))
    assert done.returncode == 0, done.stderr.decode()
    child = json.loads(out_of(done))
    assert child["TOK"] == TOKEN
    assert child["PORT"] == "5432"
    assert child["ENABLED"] == "false"
    assert child["RATIO"] == "1.5"
    assert child["APP_NAME"] == "app"
    assert child["OVERRIDDEN"] == "from-strongroom"
    assert child["CALLER_ONLY"] == "kept"
    assert child["PATH"] == sr.env["PATH"]


def test_secrets_in_stdout_and_stderr_are_masked(sr):
    script = 'echo "out $TOK"; echo "err $TOK" >&2; cat "$SECRET_FILE"; echo; printf "%s" "$TOK"'
    done = sr("run", ENV, "--", "sh", "-c", script)
    assert done.returncode == 0
    assert out_of(done) == f"out {MASK}\n{MASK}\n{MASK}"
    assert done.stderr.decode() == f"err {MASK}\n"
    assert TOKEN.encode() not in done.stdout + done.stderr
    assert FILE_SECRET.encode() not in done.stdout + done.stderr


def test_interactive_mode_passes_output_unmasked(sr):
    done = sr("run", "-i", ENV, "--", "sh", "-c", 'echo "$TOK"; echo "$TOK" >&2')
    assert done.returncode == 0
    assert out_of(done) == f"{TOKEN}\n"
    assert done.stderr.decode() == f"{TOKEN}\n"


@pytest.mark.parametrize("code", [0, 3, 42])
def test_exit_codes_pass_through(sr, code):
    done = sr("run", ENV, "--", "sh", "-c", f"echo done; exit {code}")
    assert done.returncode == code
    assert out_of(done) == "done\n"


def test_a_child_killed_by_a_signal_gives_128_plus_the_signal(sr):
    done = sr("run", ENV, "--", "sh", "-c", "kill -KILL $$")  # no ${...}: the argument passes as it is
    assert done.returncode == 128 + signal.SIGKILL


def test_a_command_that_does_not_exist(sr):
    done = sr("run", ENV, "--", "no-such-command-" + uuid.uuid4().hex[:8], "arg")
    assert done.returncode == 1
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: command not found: no-such-command-"), lines
    assert done.stdout == b""


def test_no_command(sr):
    done = sr("run", ENV, "--")
    assert done.returncode == 2
    assert b"no command to run" in done.stderr


def test_arguments_are_interpolated(sr):
    done = sr("run", ENV, "--", "printf", "%s|", "${port}", "p=${port}", "$${port}", "$$", "a$b", "${name}-${enabled}")
    # $$ is a literal $ inside an argument that interpolates; an argument without ${...} passes as it is
    assert done.returncode == 0, done.stderr.decode()
    assert out_of(done) == "5432|p=5432|${port}|$$|a$b|app-false|"


def test_a_secret_in_the_arguments_reaches_the_child_and_is_masked_in_its_output(sr):
    done = sr("run", ENV, "--", "sh", "-c", '[ "$1" = "$TOK" ] && echo "same $1"', "sh", "${tok}")
    assert done.returncode == 0, done.stderr.decode()
    assert out_of(done) == f"same {MASK}\n"


def test_a_bad_reference_in_the_arguments_is_an_error_and_nothing_runs(sr, tmp_path):
    marker = tmp_path / "ran"
    done = sr("run", ENV, "--", "sh", "-c", f"touch {marker}", "${nope.x}")
    assert done.returncode == 1
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot interpolate"), lines
    assert '"nope"' in lines[0]
    assert not marker.exists()


FILES_REPORT = """
import json, os, stat, sys
out = {}
for name in ("SECRET_FILE", "PLAIN_FILE"):
    path = os.environ[name]
    with open(path, encoding="utf-8") as fh:
        content = fh.read()
    out[name] = {
        "path": path,
        "mode": stat.S_IMODE(os.stat(path).st_mode),
        "dir_mode": stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode),
        "plain": content if name == "PLAIN_FILE" else None,
        "matches_tok": content == os.environ["TOK"],
        "matches_expected": content == sys.argv[1],
    }
print(json.dumps(out))
sys.exit(int(sys.argv[2]))
"""


@pytest.mark.parametrize("code", [0, 7])
def test_files_are_private_and_removed_after_the_child_exits(sr, code):
    done = sr("run", ENV, "--", *py(FILES_REPORT), "${filesecret}", str(code))
    assert done.returncode == code, done.stderr.decode()
    report = json.loads(out_of(done))
    secret, plain = report["SECRET_FILE"], report["PLAIN_FILE"]
    assert secret["matches_expected"] and not secret["matches_tok"]
    assert plain["plain"] == PLAIN_FILE
    assert os.path.dirname(secret["path"]) == os.path.dirname(plain["path"])
    for entry in (secret, plain):
        assert entry["mode"] == 0o600
        assert entry["dir_mode"] == 0o700
        assert not os.path.exists(entry["path"])
    assert not os.path.exists(os.path.dirname(secret["path"]))


def _start_and_read_path(sr, *command: str) -> tuple[subprocess.Popen, Path]:
    proc = sr.popen("run", ENV, "--", *command)
    assert proc.stdout is not None
    first = proc.stdout.readline().decode().strip()
    assert first, proc.stderr.read().decode() if proc.stderr else ""
    path = Path(first)
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding="utf-8") == FILE_SECRET
    return proc, path


def _finish(proc: subprocess.Popen, path: Path, timeout: float = 15) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # strongroom and whatever it started (its own session)
        proc.communicate()
        shutil.rmtree(path.parent, ignore_errors=True)  # SIGKILL left the secret file behind
        raise
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(("signum", "sent_as"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")])
def test_a_signal_to_strongroom_reaches_the_child_and_the_files_go(sr, signum, sent_as):
    proc, path = _start_and_read_path(sr, "sh", "-c", 'echo "$SECRET_FILE"; exec sleep 30')
    proc.send_signal(signum)
    code, _out, err = _finish(proc, path)
    assert code == 128 + signum, (sent_as, code, err)
    assert "Traceback" not in err
    assert not path.exists() and not path.parent.exists()


def test_the_child_receives_sigterm_and_can_handle_it(sr):
    child = """
    import os, signal, sys, time
    def handler(signum, frame):
        print("child got", signal.Signals(signum).name, flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, handler)
    print(os.environ["SECRET_FILE"], flush=True)
    time.sleep(30)
    """
    proc, path = _start_and_read_path(sr, *py(child))
    proc.send_signal(signal.SIGTERM)
    code, out, _err = _finish(proc, path)
    assert out == "child got SIGTERM\n"
    assert code == 0  # the child's own exit code, after handling the signal
    assert not path.parent.exists()


def test_a_shell_child_trapping_term(sr):
    # The first line comes after `sleep &` has started, so the trap always has a $! to kill.
    script = 'trap \'echo "trapped TERM"; kill $!; exit 143\' TERM; sleep 30 & echo "$SECRET_FILE"; wait'
    proc, path = _start_and_read_path(sr, "sh", "-c", script)
    proc.send_signal(signal.SIGTERM)
    code, out, _err = _finish(proc, path)
    assert out == "trapped TERM\n"
    assert code == 143
    assert not path.parent.exists()


def test_sigterm_with_a_shell_child_whose_grandchild_keeps_the_pipes_open(sr):
    proc, path = _start_and_read_path(sr, "sh", "-c", 'echo "$SECRET_FILE"; sleep 30')
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
        lingered = False
    except subprocess.TimeoutExpired:
        lingered = True
    file_left = path.exists()
    if lingered:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    shutil.rmtree(path.parent, ignore_errors=True)
    assert not lingered, "strongroom was still running 5 s after SIGTERM (waiting for the orphaned sleep)"
    assert not file_left, "the projected secret file was still there"
    assert proc.returncode == 143


def test_when_the_command_is_not_found_no_files_are_left(sr):
    before = {p for p in Path("/dev/shm").glob("strongroom-run-*")} if Path("/dev/shm").is_dir() else set()
    done = sr("run", ENV, "--", "no-such-command-" + uuid.uuid4().hex[:8])
    assert done.returncode == 1
    if Path("/dev/shm").is_dir():
        for folder in set(Path("/dev/shm").glob("strongroom-run-*")) - before:
            # Other processes may run strongroom at the same time: only our canary counts.
            for file in folder.glob("*"):
                with contextlib.suppress(FileNotFoundError):
                    assert FILE_SECRET not in file.read_text(encoding="utf-8", errors="replace")


def test_the_run_is_audited_as_an_open(sr):
    marker = uuid.uuid4().hex
    done = sr("run", ENV, "--", "echo", marker)
    assert done.returncode == 0 and out_of(done) == f"{marker}\n"
    listed = sr("audit", "ls", "--action", "open", "--env", ENV, "--format", "json")
    assert listed.returncode == 0, listed.stderr.decode()
    records = json.loads(listed.stdout)
    assert records, "no open record"
    last = records[-1]
    assert last["action"] == "open" and last["outcome"] == "ok"
    assert last["environment"] == ENV and last["actor"] == "runner-test"
    assert last["revision"] == 1
    assert any(k.startswith("hmac:") for k in last["details"]), last["details"]
    assert TOKEN not in listed.stdout.decode() and FILE_SECRET not in listed.stdout.decode()
