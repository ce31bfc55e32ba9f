"""``strongroom run``: start a command with an environment's variables and files, masking its output.

The child gets the caller's environment with the projected variables on top. File
projections are written to a private folder (0700, files 0600; in ``/dev/shm`` when
there is one, so they never touch a disk) and removed when the child ends, however
it ends. Unless interactive, the child's stdout and stderr pass through a
:class:`Masker` that replaces every secret of 3 characters or more with ``[secret]``,
line by line. SIGTERM, SIGHUP and SIGQUIT are forwarded; SIGINT too, except when
stdin is a terminal, which already delivers Ctrl-C to the child itself.
"""

from __future__ import annotations

__all__ = ["MASK_BYTES", "MIN_SECRET_LENGTH", "Masker", "RunPlan", "run"]

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from strongroom.errors import InvalidInputError

MASK_BYTES = b"[secret]"
MIN_SECRET_LENGTH = 3
#: Lines of a multi-line secret at least this long are masked on their own too.
MULTILINE_PART = 8
#: After the child exits, how long to keep copying output that its leftover children still write.
DRAIN_GRACE = 2.0
#: A line longer than this is masked and written in pieces rather than held back whole.
MAX_LINE = 1024 * 1024
_READ_SIZE = 256 * 1024
_FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class Masker:
    """Replaces secrets in a byte stream, holding back at most one incomplete line.

    Matching is Aho-Corasick (leftmost-longest), so the cost does not grow with the
    number of secrets.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        texts: set[str] = set()
        for secret in secrets:
            texts.add(secret)
            if "\n" in secret:  # a multi-line secret (a PEM key) is often printed line by line
                texts.update(line for line in secret.splitlines() if len(line.strip()) >= MULTILINE_PART)
        patterns = sorted(
            {t.encode("utf-8", "surrogatepass") for t in texts if len(t) >= MIN_SECRET_LENGTH},
            key=len,
            reverse=True,
        )
        self._longest = max((len(p) for p in patterns), default=0)
        self._matcher = None
        if patterns:
            import ahocorasick_rs

            # Every match, overlapping ones too: where two secrets overlap, their union is masked.
            self._matcher = ahocorasick_rs.BytesAhoCorasick(patterns, matchkind=ahocorasick_rs.MatchKind.Standard)
        self._pending = b""

    def __repr__(self) -> str:
        return "Masker([secrets])"

    def _mask(self, data: bytes, limit: int) -> tuple[bytes, int]:
        """Mask ``data``; emit up to ``limit`` (or past it, to the end of a match that starts before it)."""
        if self._matcher is None:
            return data[:limit], limit
        spans: list[list[int]] = []
        matches = self._matcher.find_matches_as_indexes(data, overlapping=True)
        for _index, start, end in sorted(matches, key=lambda m: (m[1], -m[2])):
            if spans and start < spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        out = bytearray()
        last = 0
        for start, end in spans:
            if start >= limit:
                break
            out += data[last:start]
            out += MASK_BYTES
            last = end
        end_at = max(limit, last)
        out += data[last:end_at]
        return bytes(out), end_at

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) > MAX_LINE:
            cut = len(data) - max(self._longest - 1, 0)
        if cut == 0:
            self._pending = data
            return b""
        out, used = self._mask(data, cut)
        self._pending = data[used:]
        return out

    def flush(self) -> bytes:
        data, self._pending = self._pending, b""
        return self._mask(data, len(data))[0] if data else b""


@dataclass
class RunPlan:
    """What to run and with what. ``files`` maps a variable name to the content of its file."""

    argv: list[str]
    variables: Mapping[str, str]
    files: Mapping[str, bytes] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    mask: bool = True

    def __repr__(self) -> str:
        return f"RunPlan(argv0={self.argv[:1]!r}, variables={sorted(self.variables)!r}, files={sorted(self.files)!r})"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _writer(stream: Any) -> Callable[[bytes], None]:
    """Write bytes to a file descriptor when the stream has one, else through its buffer (tests, embedding)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        buffer = getattr(stream, "buffer", stream)

        def write(data: bytes) -> None:
            buffer.write(data)
            buffer.flush()

        return write
    return lambda data: _write_all(fd, data)


def _pump(source: int, write: Callable[[bytes], None], masker: Masker) -> None:
    try:
        while True:
            chunk = os.read(source, _READ_SIZE)
            if not chunk:
                break
            out = masker.feed(chunk)
            if out:
                write(out)
        tail = masker.flush()
        if tail:
            write(tail)
    except BrokenPipeError:
        pass
    finally:
        os.close(source)


def _private_dir() -> str:
    shm = "/dev/shm"  # noqa: S108 - memory-backed, so projected files never reach a disk
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    return tempfile.mkdtemp(prefix="strongroom-run-", dir=base)


def _write_files(folder: str, files: Mapping[str, bytes]) -> dict[str, str]:
    paths: dict[str, str] = {}
    for name, content in files.items():
        path = os.path.join(folder, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        paths[name] = path
    return paths


def run(plan: RunPlan, *, base_environment: Mapping[str, str] | None = None) -> int:
    """Run the plan; return the child's exit code (128 + N when killed by signal N)."""
    if not plan.argv:
        raise InvalidInputError("no command to run", hint="put the command after --, e.g. strongroom run ENV -- env")
    env = dict(os.environ if base_environment is None else base_environment)
    env.update(plan.variables)
    folder = _private_dir() if plan.files else None
    previous: dict[int, object] = {}
    try:
        if folder is not None:
            env.update(_write_files(folder, plan.files))
        stdio = subprocess.PIPE if plan.mask else None
        try:
            child = subprocess.Popen(plan.argv, env=env, stdout=stdio, stderr=stdio)  # noqa: S603
        except FileNotFoundError:
            raise InvalidInputError(f"command not found: {plan.argv[0]}") from None
        except PermissionError:
            raise InvalidInputError(f"command is not executable: {plan.argv[0]}") from None

        def forward(signum: int, _frame: FrameType | None) -> None:
            if child.poll() is None:
                child.send_signal(signum)

        forwarded: list[int] = list(_FORWARDED)
        if not (sys.stdin is not None and sys.stdin.isatty()):
            forwarded.append(signal.SIGINT)
        if threading.current_thread() is threading.main_thread():
            for signum in forwarded:
                previous[signum] = signal.signal(signum, forward)
        pumps: list[threading.Thread] = []
        if plan.mask:
            assert child.stdout is not None and child.stderr is not None
            for pipe, target in ((child.stdout, sys.stdout), (child.stderr, sys.stderr)):
                target.flush()
                source = os.dup(pipe.fileno())
                pipe.close()
                thread = threading.Thread(
                    target=_pump, args=(source, _writer(target), Masker(plan.secrets)), daemon=True
                )
                thread.start()
                pumps.append(thread)
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:  # SIGINT from a terminal: the child got it too; keep waiting
                continue
        if folder is not None:  # the files go the moment the command ends, not when its pipes close
            shutil.rmtree(folder, ignore_errors=True)
            folder = None
        deadline = time.monotonic() + DRAIN_GRACE
        for thread in pumps:  # a background process the command left may hold the pipes open
            thread.join(max(0.0, deadline - time.monotonic()))
        return code if code >= 0 else 128 - code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
