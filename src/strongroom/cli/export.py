"""``strongroom export ENV --kubernetes``: write Secret manifests for GitOps pipelines.

    strongroom export ENV --kubernetes [-o DIR] [--namespace NS ...] [--sealed CMD]

Without ``--sealed`` the manifests hold the values (base64 is not encryption) and a warning says
they must not be committed. ``--sealed CMD`` pipes each manifest through CMD (run without a shell:
the manifest on stdin, the sealed manifest expected on stdout, exit 0), e.g. ``kubeseal -o yaml``.
"""

from __future__ import annotations

__all__ = ["export", "export_kubernetes_manifests"]

import io
import shlex
import subprocess
from pathlib import Path
from typing import Any

import click

from strongroom.model import RevisionRef

PLAINTEXT_WARNING = (
    "warning: these manifests hold the secrets in plaintext (base64 is not encryption); "
    "do not commit them. Use --sealed CMD to encrypt them for the cluster."
)


def _yaml(document: dict[str, Any]) -> str:
    from ruamel.yaml import YAML

    out = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(document, out)
    return out.getvalue()


def export_kubernetes_manifests(
    specs: list[Any], *, key: bytes, environment: str, revision: int, namespaces: list[str]
) -> tuple[list[tuple[str, str, dict[str, Any]]], list[str]]:
    """``(namespace, name, manifest)`` for every target, and the globs no given namespace matched."""
    from strongroom.tiers._kube_projection import content_hmac, desired_manifest, is_glob, match_namespaces

    out: list[tuple[str, str, dict[str, Any]]] = []
    unmatched: list[str] = []
    for spec in specs:
        unmatched.extend(p for p in spec.namespaces if is_glob(p) and not match_namespaces([p], namespaces))
        for namespace in match_namespaces(spec.namespaces, namespaces):
            digest = content_hmac(key, spec, namespace)
            manifest = desired_manifest(spec, namespace, environment=environment, revision=revision, digest=digest)
            out.append((namespace, spec.name, manifest))
    return out, sorted(set(unmatched))


def _seal(command: list[str], text: str, target: str) -> str:
    from strongroom.errors import InvalidInputError

    try:
        done = subprocess.run(command, input=text.encode(), capture_output=True, timeout=120, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InvalidInputError(f"--sealed command could not run for {target}: {type(exc).__name__}") from None
    if done.returncode != 0 or not done.stdout.strip():
        raise InvalidInputError(
            f"--sealed command failed for {target} (exit {done.returncode}); nothing more was written",
            hint="the command gets the manifest on stdin and must print the sealed manifest on stdout",
        )
    return done.stdout.decode()


@click.command("export")
@click.argument("name")
@click.option("--kubernetes", "kubernetes", is_flag=True, required=True, help="Export Kubernetes Secret manifests.")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False), help="Directory (default: stdout).")
@click.option("--namespace", "namespaces", multiple=True, help="Namespaces that globs may match (repeatable).")
@click.option("--sealed", "sealed", help="Pipe each manifest through this command (stdin -> stdout).")
@click.pass_context
def export(
    ctx: click.Context,
    /,
    name: str,
    kubernetes: bool,
    output: str | None,
    namespaces: tuple[str, ...],
    sealed: str | None,
) -> None:
    """Write NAME's kubernetesSecrets as Secret manifests (one file per namespace and Secret)."""
    from strongroom.cli.app import _app, _fail
    from strongroom.errors import StrongroomError, UsageError

    try:
        if not kubernetes:
            raise UsageError("say what to export: --kubernetes")
        command = shlex.split(sealed) if sealed else None
        if sealed is not None and not command:
            raise UsageError("--sealed needs a command")
        service = _app(ctx).service()
        from strongroom.tiers._kube_projection import project_kubernetes_secrets

        ref = RevisionRef.parse(name)
        rev = service.resolve(ref)
        value, _ev = service.open(RevisionRef(ref.env, rev.number))
        specs = project_kubernetes_secrets(value)
        manifests, unmatched = export_kubernetes_manifests(
            specs, key=service.audit_key(), environment=str(ref.env), revision=rev.number, namespaces=list(namespaces)
        )
        for pattern in unmatched:
            click.echo(f"note: no --namespace matches {pattern!r}; pass --namespace NAME to export for it", err=True)
        if command is None:
            click.echo(PLAINTEXT_WARNING, err=True)
        written: list[str] = []
        documents: list[str] = []
        for namespace, secret, manifest in manifests:
            text = _yaml(manifest)
            if command is not None:
                text = _seal(command, text, f"{namespace}/{secret}")
            if output is None:
                documents.append(text)
                continue
            path = Path(output) / namespace / (f"{secret}.sealed.yaml" if command else f"{secret}.yaml")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(str(path))
        if output is None:
            click.echo("---\n".join(documents), nl=False)
        else:
            for path_text in written:
                click.echo(f"wrote {path_text}")
        service.record(
            service._event(
                "export.kubernetes",
                env=ref.env,
                revision=rev.number,
                details=[
                    ("secrets", ";".join(f"{ns}/{n}" for ns, n, _m in manifests)),
                    ("sealed", "yes" if command else "no"),
                ],
            )
        )
    except StrongroomError as exc:
        _fail(exc)
