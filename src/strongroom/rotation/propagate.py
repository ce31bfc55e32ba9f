"""The engine's propagate step: re-sync every Kubernetes and GitHub target that carries a rotated secret.

After ``finish`` the new value is current. :class:`TierPropagator` reads it (an audited
decrypt), finds every environment whose ``kubernetesSecrets`` or ``githubSecrets`` carry it
(the secret's own and every importer, as the incident blast radius does) and runs the same
sync as ``strongroom sync ENV --to kubernetes|github`` for each. Syncs are idempotent, so
repeating the step after a crash is safe. A failed or unconfigured tier is reported (with
the command to run by hand), never raised: the rotation itself stands.
"""

from __future__ import annotations

__all__ = ["PropagationOutcome", "TierPropagator", "TierSettings", "kubernetes_settings"]

import functools
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strongroom.errors import StrongroomError
from strongroom.language.paths import Path, format_path
from strongroom.model import EnvRef, RevisionRef

if TYPE_CHECKING:
    from strongroom.service import Service


def kubernetes_settings(
    kubeconfig: str | None, context: str | None, environ: Mapping[str, str], *, restart: bool = False
) -> dict[str, Any] | None:
    """Options for the Kubernetes sync, or ``None`` when there is no way to reach a cluster.

    Reachable: ``--kubeconfig``/``--context`` given, ``KUBECONFIG`` set, ``~/.kube/config``
    present, or running in a cluster (``KUBERNETES_SERVICE_HOST``).
    """
    home = environ.get("HOME") or os.path.expanduser("~")
    if not (
        kubeconfig
        or context
        or environ.get("KUBECONFIG")
        or environ.get("KUBERNETES_SERVICE_HOST")
        or os.path.exists(os.path.join(home, ".kube", "config"))
    ):
        return None
    return {"kubeconfig": kubeconfig, "kube_context": context, "restart": restart}


@dataclass(frozen=True, slots=True)
class TierSettings:
    """How to reach the tiers. ``kubernetes=None``: not configured (the command is printed instead)."""

    kubernetes: Mapping[str, Any] | None = None
    github: bool = True
    github_api_url: str | None = None
    environ: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str],
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        restart: bool = False,
        github: bool = True,
        github_api_url: str | None = None,
    ) -> TierSettings:
        """The tiers as ``rotate``, ``run-due`` and the ``serve`` loop reach them: Kubernetes by
        :func:`kubernetes_settings`, GitHub at ``github_api_url`` or ``STRONGROOM_GITHUB_API_URL``."""
        return cls(
            kubernetes=kubernetes_settings(kubeconfig, context, environ, restart=restart),
            github=github,
            github_api_url=github_api_url or environ.get("STRONGROOM_GITHUB_API_URL") or None,
            environ=environ,
        )


@dataclass(frozen=True, slots=True)
class PropagationOutcome:
    """One tier re-sync of one environment: ``outcome`` is ``ok``, ``failed: ...`` or ``not configured``."""

    tier: str
    environment: str
    outcome: str
    command: str

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def to_json(self) -> dict[str, str]:
        return {"tier": self.tier, "environment": self.environment, "outcome": self.outcome}


def _owners(carriers: list[tuple[str, object]]) -> list[str]:
    """The environments to re-sync: for a target that several carry (an importer inherits its
    parent's ``kubernetesSecrets``), only the first, which is the secret's own environment where
    it declares one. Syncing the same target from an importer would be refused as not its own."""
    seen: set[object] = set()
    chosen: list[str] = []
    for environment, target in carriers:
        if target not in seen:
            seen.add(target)
            if environment not in chosen:
                chosen.append(environment)
    return chosen


class TierPropagator:
    """A :data:`~strongroom.rotation.engine.Propagator` that re-syncs the tiers carrying the new value.

    ``outcomes`` collects what each call did (for the incident record and the exit code).
    ``echo`` receives the sync commands' own output lines.
    """

    def __init__(
        self, service: Service, settings: TierSettings, *, echo: Callable[[str], None] | None = None
    ) -> None:
        self._service = service
        self._settings = settings
        self._echo = echo or (lambda _line: None)
        self.outcomes: list[PropagationOutcome] = []

    def __repr__(self) -> str:
        return f"TierPropagator(service={self._service!r})"

    @property
    def failed(self) -> list[PropagationOutcome]:
        return [o for o in self.outcomes if o.outcome.startswith("failed")]

    @property
    def not_configured(self) -> list[PropagationOutcome]:
        return [o for o in self.outcomes if o.outcome == "not configured"]

    def __call__(self, env: EnvRef, path: Path, revision: int) -> str:
        from strongroom.rotation.incident import blast_radius, current_plaintext

        plaintext = current_plaintext(self._service, env, path)
        radius = blast_radius(self._service, env, format_path(path), plaintext)
        del plaintext
        jobs: list[Callable[[], PropagationOutcome]] = []
        for name in _owners([(k.environment, (k.name, k.namespaces)) for k in radius.kubernetes]):
            jobs.append(functools.partial(self._kubernetes, name))
        for name in _owners([(g.environment, (g.scope, g.name)) for g in radius.github]):
            jobs.append(functools.partial(self._github, name))
        if len(jobs) > 1:  # the tiers wait on different servers: re-sync them side by side
            with ThreadPoolExecutor(max_workers=min(len(jobs), 4)) as pool:
                done = list(pool.map(lambda job: job(), jobs))
        else:
            done = [job() for job in jobs]
        self.outcomes.extend(done)
        if not done:
            return "no Kubernetes or GitHub target carries it"
        return "; ".join(f"{o.tier} from {o.environment}: {o.outcome}" for o in done)

    def _run(
        self,
        tier: str,
        name: str,
        command: str,
        sync: Callable[[], int],
        unconfigured: tuple[type[StrongroomError], ...] = (),
    ) -> PropagationOutcome:
        """Run one re-sync; ``unconfigured`` errors mean the tier has no credentials here (left to a person)."""
        try:
            code = sync()
        except unconfigured:
            return PropagationOutcome(tier, name, "not configured", command)
        except StrongroomError as exc:
            return PropagationOutcome(tier, name, f"failed: {exc.message}", command)
        except Exception as exc:  # a tier failing must not undo or hide the rotation
            return PropagationOutcome(tier, name, f"failed: {type(exc).__name__}", command)
        return PropagationOutcome(tier, name, "ok" if code == 0 else "failed", command)

    def _kubernetes(self, name: str) -> PropagationOutcome:
        options = self._settings.kubernetes
        command = f"strongroom sync {name} --to kubernetes"
        if options is None:
            return PropagationOutcome("kubernetes", name, "not configured", command)
        from strongroom.tiers import kubernetes

        ref = RevisionRef(EnvRef.parse(name))
        return self._run("kubernetes", name, command, lambda: kubernetes.sync_from_cli(self._service, ref, options))

    def _github(self, name: str) -> PropagationOutcome:
        command = f"strongroom sync {name} --to github"
        if not self._settings.github:
            return PropagationOutcome("github", name, "not configured", command)
        from strongroom.tiers import github

        ref = RevisionRef(EnvRef.parse(name))
        settings = self._settings
        return self._run(
            "github",
            name,
            command,
            unconfigured=(github.NoTokenError,),
            sync=lambda: github.run_sync(
                self._service,
                ref,
                api_url=settings.github_api_url,
                environ=settings.environ,
                echo=self._echo,
                progress=False,
            ),
        )
