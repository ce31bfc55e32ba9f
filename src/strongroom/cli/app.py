"""Click commands. Each one parses its arguments, calls the service and renders the result.

Only this layer catches Strongroom errors broadly, turning each into one line on
stderr and its exit code (1 for user errors, 2 for usage errors).
"""

from __future__ import annotations

__all__ = ["cli"]

import os
import sys
from typing import Any, NoReturn

import click

from strongroom import __version__
from strongroom.cli.context import AppContext
from strongroom.errors import DefinitionError, InvalidInputError, StrongroomError, UsageError
from strongroom.model import EnvRef, RevisionRef


def _fail(exc: StrongroomError) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    if isinstance(exc, DefinitionError) and len(exc.diagnostics) > 1:
        for diag in exc.diagnostics:
            click.echo(f"  {diag.severity}: {diag}", err=True)
    raise SystemExit(exc.exit_code)


class _Group(click.Group):
    """A group that turns Strongroom errors into clean messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StrongroomError as exc:
            _fail(exc)


class _DefaultCommandGroup(_Group):
    """A :class:`_Group` whose first argument, when it names no subcommand, goes to ``default_command``:
    ``sync ENV`` is ``sync push ENV``, ``incident ENV PATH`` is ``incident respond ENV PATH``."""

    def __init__(self, *args: Any, default_command: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default_command = default_command

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args.insert(0, self.default_command)
        return super().resolve_command(ctx, args)


#: Subcommand groups imported only when used, so that `env get` does not pay for them.
_LAZY = {
    "audit": ("strongroom.cli.audit", "audit"),
    "token": ("strongroom.cli.tokens", "token"),
    "webhook": ("strongroom.cli.webhooks", "webhook"),
    "serve": ("strongroom.cli.serve", "serve"),
    "sync": ("strongroom.cli.sync", "sync"),
    "preview": ("strongroom.cli.preview", "preview"),
    "export": ("strongroom.cli.export", "export"),
    "pulumi": ("strongroom.cli.pulumi", "pulumi"),
    "catalog": ("strongroom.cli.catalog", "catalog"),
    "rotation": ("strongroom.cli.rotation", "rotation"),
    "rotate": ("strongroom.cli.rotate", "rotate"),
    "doctor": ("strongroom.cli.doctor", "doctor"),
    "incident": ("strongroom.cli.incident", "incident"),
}


class _RootGroup(_Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY and cmd_name not in self.commands:
            import importlib

            module_name, attr = _LAZY[cmd_name]
            try:
                command: click.Command = getattr(importlib.import_module(module_name), attr)
            except ImportError:
                return None
            if type(command) is click.Group:
                command.__class__ = _Group
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


def _app(ctx: click.Context) -> AppContext:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppContext):
        obj = AppContext.from_os()
        ctx.find_root().obj = obj
        ctx.find_root().call_on_close(obj.close)
    return obj


def _text_arg(value: str, what: str) -> str:
    """Reject arguments that were not valid UTF-8 (Python hands them over as surrogates)."""
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        raise InvalidInputError(f"{what} is not valid UTF-8", hint="pass text in UTF-8")
    return value


def _read_input(source: str, what: str) -> str:
    """Read ``-`` (stdin) or a file as strict UTF-8."""
    try:
        if source == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as fh:
                data = fh.read()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {what} {source!r}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{what} {'from stdin' if source == '-' else repr(source)} is not valid UTF-8 "
            f"(bad byte at offset {exc.start})",
            hint="save it as UTF-8 and try again; nothing was changed",
        ) from None


def _env(text: str) -> EnvRef:
    return EnvRef.parse(_text_arg(text, "the environment name"))


def _path(text: str) -> tuple[str | int, ...]:
    from strongroom.language.paths import parse_path

    return parse_path(_text_arg(text, "the path"))


@click.group(cls=_RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="strongroom")
def cli() -> None:
    """Strongroom: one encrypted home for every secret, pushed to where it is used.

    \b
    Environment variables:
      STRONGROOM_HOME        where the SQLite store and key file live (~/.strongroom)
      STRONGROOM_STORE       postgresql://... to use PostgreSQL instead of SQLite
      STRONGROOM_MASTER_KEY  base64 master key (instead of the key file)
      STRONGROOM_PASSPHRASE  passphrase the master key is derived from
    """


# --- init and keys ----------------------------------------------------------------------------


@cli.command()
@click.option("--passphrase", "use_passphrase", is_flag=True, help="Derive the master key from a passphrase.")
@click.pass_context
def init(ctx: click.Context, use_passphrase: bool) -> None:
    """Create the store and its master key (never overwrites an existing key)."""
    from strongroom.cli.keys import initialise

    initialise(_app(ctx), use_passphrase=use_passphrase)


@cli.group(cls=_Group)
def key() -> None:
    """Manage the master key."""


@key.command("rotate")
@click.pass_context
def key_rotate(ctx: click.Context) -> None:
    """Re-wrap every data key under a new master key; no revision changes."""
    from strongroom.cli.keys import rotate

    rotate(_app(ctx))


@key.command("generate")
def key_generate() -> None:
    """Print a new random master key for STRONGROOM_MASTER_KEY."""
    from strongroom.crypto.providers import generate_master_key_b64

    click.echo(generate_master_key_b64())


@key.command("show")
@click.pass_context
def key_show(ctx: click.Context) -> None:
    """Show which master key is in use (its id, never the key)."""
    app = _app(ctx)
    service = app.service()
    provider = app.key_provider(service.store)
    ring = service.keyring()
    click.echo(f"provider: {provider.description}")
    click.echo(f"key id:   {ring.primary.key_id}")


# --- env ----------------------------------------------------------------------------------------


@cli.group(cls=_Group)
def env() -> None:
    """Create, read and change environments (as `pulumi env` does)."""


@env.command("init")
@click.argument("name")
@click.option("-f", "--file", "source", metavar="FILE|-", help="Initial definition (YAML).")
@click.pass_context
def env_init(ctx: click.Context, name: str, source: str | None) -> None:
    """Create environment NAME (PROJECT/NAME)."""
    ref = _env(name)
    text = _read_input(source, "definition") if source else ""
    rev = _app(ctx).service().create_environment(ref, text)
    _show_diagnostics(rev.warnings)
    click.echo(f"Environment {ref} created (revision {rev.number}).")


@env.command("ls")
@click.option("--project", help="Only this project's environments.")
@click.option("--long", "-l", "long_", is_flag=True, help="Show revision and creation time too.")
@click.pass_context
def env_ls(ctx: click.Context, project: str | None, long_: bool) -> None:
    """List environments."""
    service = _app(ctx).service()
    out = sys.stdout
    after: EnvRef | None = None
    rows: list[tuple[str, str, str]] = []
    while True:
        page = service.list_environments(project=project, after=after, limit=1000)
        for rec in page:
            if long_:
                rows.append((str(rec.ref), str(rec.latest_revision), rec.created_at))
            else:
                out.write(f"{rec.ref}\n")
        if len(page) < 1000:
            break
        after = page[-1].ref
    if long_:
        from strongroom.cli.tables import print_table

        print_table(("environment", "revision", "created"), rows)


def _show_diagnostics(diagnostics: Any) -> None:
    for diag in diagnostics:
        d = diag.to_diagnostic() if hasattr(diag, "to_diagnostic") else diag
        click.echo(f"{d.severity}: {d}", err=True)


def _print_value(value: Any, fmt: str, *, reveal: bool, variables: dict[str, Any] | None = None) -> None:
    from strongroom.cli import render

    if fmt == "json":
        click.echo(render.to_json(value, show_secrets=reveal))
    elif fmt == "yaml":
        sys.stdout.write(render.to_yaml(value, show_secrets=reveal))
    elif fmt == "string":
        sys.stdout.write(render.to_string(value, show_secrets=reveal))
    else:
        if variables is None:
            raise UsageError(f"--format {fmt} prints environmentVariables; it takes no PATH")
        writer = render.to_dotenv if fmt == "dotenv" else render.to_shell
        sys.stdout.write(writer(variables, show_secrets=reveal))


@env.command("get")
@click.argument("name")
@click.argument("path", required=False)
@click.option("--show-secrets", is_flag=True, help="Print secrets in plaintext.")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@click.option(
    "--value",
    "value_fmt",
    type=click.Choice(["json", "yaml", "dotenv", "shell", "string"]),
    help="Print only the evaluated value in this format (secrets still masked).",
)
@click.option("--definition", is_flag=True, help="Print the YAML definition itself (ciphertext unless --show-secrets).")
@click.pass_context
def env_get(
    ctx: click.Context,
    name: str,
    path: str | None,
    show_secrets: bool,
    fmt: str,
    value_fmt: str | None,
    definition: bool,
) -> None:
    """Show an environment's evaluated values (NAME[@REV]) and where each is defined; secrets print as [secret]."""
    from strongroom.cli.render import to_json, to_yaml, with_sources

    ref = RevisionRef.parse(_text_arg(name, "the environment name"))
    service = _app(ctx).service()
    if definition:
        if path is not None:
            raise UsageError("--definition prints the whole definition; drop PATH")
        sys.stdout.write(service.definition_text(ref, show_secrets=show_secrets))
        return
    keys = _path(path) if path else ()
    value, ev = service.read_value(ref, keys, show_secrets=show_secrets)
    _show_diagnostics(ev.diagnostics)
    if value_fmt is not None:
        variables = _variables(service, ev) if value_fmt in ("dotenv", "shell") and not keys else None
        _print_value(_python_of(value), value_fmt, reveal=show_secrets, variables=variables)
    elif fmt == "json":
        click.echo(to_json(_python_of(value), show_secrets=show_secrets))
    elif isinstance(value.value, dict | list):
        sys.stdout.write(to_yaml(with_sources(value, show_secrets), show_secrets=show_secrets))
    else:  # one value: print it bare, as scripts expect (`--value` gives other formats)
        sys.stdout.write(to_yaml(_python_of(value), show_secrets=show_secrets))
    if any(d.is_error for d in ev.diagnostics):
        raise SystemExit(1)


def _python_of(value: Any) -> Any:
    from strongroom.service import _python

    return _python(value)


def _variables(service: Any, ev: Any) -> dict[str, Any]:
    """The environmentVariables projection, secrets as :class:`Secret` so renderers can mask them."""
    variables, diagnostics = service.environment_variables(ev)
    _show_diagnostics(diagnostics)
    return dict(variables)


@env.command("open")
@click.argument("name")
@click.argument("path", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "yaml", "dotenv", "shell", "string"]),
    default="json",
    show_default=True,
    help="dotenv and shell print the environmentVariables projection.",
)
@click.pass_context
def env_open(ctx: click.Context, name: str, path: str | None, fmt: str) -> None:
    """Print an environment's values with secrets in plaintext. Recorded in the audit log."""
    ref = RevisionRef.parse(_text_arg(name, "the environment name"))
    keys = _path(path) if path else ()
    service = _app(ctx).service()
    value, ev = service.open(ref, keys)
    _show_diagnostics(ev.diagnostics)
    variables = _variables(service, ev) if fmt in ("dotenv", "shell") and not keys else None
    _print_value(_python_of(value), fmt, reveal=True, variables=variables)


@env.command("set")
@click.argument("name")
@click.argument("path")
@click.argument("value", required=False)
@click.option("--secret", "secret", is_flag=True, help="Encrypt the value and mark it secret.")
@click.option("--plaintext", is_flag=True, help="Store a credential-looking value in plaintext anyway.")
@click.option("-f", "--file", "source", metavar="FILE|-", help="Read the value from a file or stdin.")
@click.pass_context
def env_set(
    ctx: click.Context,
    name: str,
    path: str,
    value: str | None,
    secret: bool,
    plaintext: bool,
    source: str | None,
) -> None:
    """Set the value at PATH, for example pulumiConfig."postgresql:password"."""
    from strongroom.service import parse_value

    if secret and plaintext:
        raise UsageError("--secret and --plaintext cannot be used together")
    if (value is None) == (source is None):
        raise UsageError("give either VALUE or --file", hint="for example: strongroom env set ENV a.b 42")
    ref = _env(name)
    keys = _path(path)
    if source is not None:
        raw = _read_input(source, "value")
        raw = raw[:-1] if raw.endswith("\n") else raw  # as $(...) would: `openssl rand -hex 32 | ... -f -`
    else:
        raw = _text_arg(value or "", "the value")
    parsed: Any = raw if secret or source is not None else parse_value(raw)
    rev = _app(ctx).service().set_value(ref, keys, parsed, secret=secret, plaintext_ok=plaintext)
    _show_diagnostics(rev.warnings)
    click.echo(f"Updated {ref} (revision {rev.number}).", err=True)


@env.command("rm")
@click.argument("name")
@click.argument("path", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def env_rm(ctx: click.Context, name: str, path: str | None, yes: bool) -> None:
    """Remove environment NAME, or only the value at PATH."""
    ref = _env(name)
    service = _app(ctx).service()
    if path is not None:
        rev = service.remove_value(ref, _path(path))
        _show_diagnostics(rev.warnings)
        click.echo(f"Removed {path} from {ref} (revision {rev.number}).", err=True)
        return
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"refusing to delete {ref} without confirmation", hint="pass --yes")
        click.confirm(f"Delete environment {ref} and its whole history?", abort=True, err=True)
    service.delete_environment(ref)
    click.echo(f"Environment {ref} deleted.", err=True)


@env.command("edit")
@click.argument("name")
@click.option("-f", "--file", "source", metavar="FILE|-", help="New definition; otherwise $EDITOR.")
@click.pass_context
def env_edit(ctx: click.Context, name: str, source: str | None) -> None:
    """Replace an environment's definition (validated before it is saved)."""
    ref = _env(name)
    service = _app(ctx).service()
    if source is not None:
        rev = service.replace_definition(ref, _read_input(source, "definition"))
        _show_diagnostics(rev.warnings)
        click.echo(f"Updated {ref} (revision {rev.number}).", err=True)
        return
    from strongroom.cli.editor import edit_in_editor

    current = service.definition(RevisionRef(ref))
    edited = edit_in_editor(current.definition, dict(os.environ))
    if edited is None or edited == current.definition:
        click.echo("No changes.", err=True)
        return
    rev = service.replace_definition(ref, edited, expected_latest=current.number)
    _show_diagnostics(rev.warnings)
    click.echo(f"Updated {ref} (revision {rev.number}).", err=True)


@env.command("history")
@click.argument("name")
@click.pass_context
def env_history(ctx: click.Context, name: str) -> None:
    """List an environment's revisions, newest first."""
    from strongroom.cli.tables import print_table

    entries = _app(ctx).service().history(_env(name))
    print_table(
        ("revision", "tags", "author", "created"),
        [(str(e.number), ", ".join(e.tags), e.author, e.created_at) for e in entries],
    )


@env.command("diff")
@click.argument("a")
@click.argument("b", required=False)
@click.option("--show-secrets", is_flag=True, help="Print changed secrets in plaintext.")
@click.pass_context
def env_diff(ctx: click.Context, a: str, b: str | None, show_secrets: bool) -> None:
    """Show what changed from revision A to B (default: the newest)."""
    from strongroom.cli.render import MASK, to_json

    ref_a = RevisionRef.parse(_text_arg(a, "the revision"))
    ref_b = RevisionRef.parse(_text_arg(b, "the revision")) if b else RevisionRef(ref_a.env)
    changes = _app(ctx).service().diff(ref_a, ref_b, show_secrets=show_secrets)

    def show(value: Any) -> str:
        text = to_json(value, show_secrets=show_secrets, indent=None)
        return MASK if text == f'"{MASK}"' else text

    if not changes:
        click.echo(f"No differences between {ref_a} and {ref_b}.", err=True)
        return
    for change in changes:
        if change.kind == "added":
            click.echo(f"+ {change.path}: {show(change.new)}")
        elif change.kind == "removed":
            click.echo(f"- {change.path}: {show(change.old)}")
        elif show(change.old) == show(change.new) == MASK:
            click.echo(f"~ {change.path}: {MASK} (changed)")
        else:
            click.echo(f"~ {change.path}: {show(change.old)} -> {show(change.new)}")


@env.command("rollback")
@click.argument("target")
@click.pass_context
def env_rollback(ctx: click.Context, target: str) -> None:
    """Write a new revision with the content of ENV@REV."""
    ref = RevisionRef.parse(_text_arg(target, "the revision"))
    if ref.selector is None:
        raise UsageError("name the revision to roll back to", hint="for example: strongroom env rollback ENV@3")
    rev = _app(ctx).service().rollback(ref)
    click.echo(f"Rolled {ref.env} back to {ref.selector} (new revision {rev.number}).", err=True)


@env.command("tag")
@click.argument("name")
@click.argument("tag", required=False)
@click.argument("revision", required=False)
@click.option("--delete", "-d", is_flag=True, help="Remove the tag.")
@click.pass_context
def env_tag(ctx: click.Context, name: str, tag: str | None, revision: str | None, delete: bool) -> None:
    """Point TAG at REVISION (default: the newest); with no TAG, list the tags."""
    ref = _env(name)
    service = _app(ctx).service()
    if tag is None:
        from strongroom.cli.tables import print_table

        print_table(
            ("tag", "revision", "updated"),
            [(t.name, str(t.revision), t.updated_at) for t in service.list_tags(ref)],
        )
        return
    if delete:
        service.untag(ref, tag)
        click.echo(f"Tag {tag} removed from {ref}.", err=True)
        return
    selector: int | str | None = None
    if revision is not None:
        selector = RevisionRef.parse(f"{ref}@{_text_arg(revision, 'the revision')}").selector
    number = service.tag(ref, tag, selector)
    click.echo(f"Tagged {ref}@{number} as {tag}.", err=True)


@env.command("clone")
@click.argument("src")
@click.argument("dst")
@click.option("--preserve-history", is_flag=True, help="Copy every revision and tag, not only the newest.")
@click.pass_context
def env_clone(ctx: click.Context, src: str, dst: str, preserve_history: bool) -> None:
    """Copy environment SRC to a new environment DST."""
    source, target = _env(src), _env(dst)
    count = _app(ctx).service().clone(source, target, preserve_history=preserve_history)
    click.echo(f"Cloned {source} to {target} ({count} revision{'s' if count != 1 else ''}).", err=True)


_RUN_SETTINGS = {"ignore_unknown_options": True, "allow_interspersed_args": True}


@click.command("run", context_settings=_RUN_SETTINGS)
@click.argument("name")
@click.option("-i", "--interactive", is_flag=True, help="Give the command the terminal, unmasked.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run_cmd(ctx: click.Context, name: str, interactive: bool, command: tuple[str, ...]) -> None:
    """Run CMD with the environment's environmentVariables and files; secrets in its output are masked.

    \b
    strongroom run aphiria.com/Production -- ./deploy.sh --token '${pulumiConfig["prometheus:authToken"]}'
    """
    from strongroom.cli.run import run_command

    args = [_text_arg(a, "an argument") for a in command]
    code = run_command(_app(ctx).service(), _text_arg(name, "the environment name"), args, interactive=interactive)
    raise SystemExit(code)


cli.add_command(run_cmd)
env.add_command(run_cmd)
