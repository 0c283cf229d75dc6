"""Whether each required image is ready at the site: pure judgement of what was read.

For each image of ``requiredImages`` (components/config/images.py), four questions, each a gap
when the answer is no or unknown:

* **scope**: is its repository in the sync scope, ``repositories`` with ``ns/*`` expanded against
  the parent registry's catalog exactly as the program expands it
  (components/azure/catalog.py ``synced_repositories``)?
* **cloud**: which digest does the parent registry give it (the tag's current one)?
* **synced**: has the connected registry synced since that digest was pushed (the tag last
  moved), by ARM's ``lastSyncTime``?
* **nodes**: on every node that is not ``gone``, does the manifest resolve through the mirror the
  node's runtime uses (its registries.yaml), to that same digest, without the cloud registry
  (components/nodes/resolve.py)?

Every gap is one line naming the image (and the node), with what to do about it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from components.azure.cloud_images import CloudImage
from components.config.images import ImageReference
from components.nodes.resolve import Attempt

NodeStatus = Literal["ok", "missing", "differs", "error", "unverified"]


@dataclass(frozen=True)
class NodeCheck:
    """What one node answered: a problem for all its images, or each image's attempts."""

    host: str
    problem: str | None = None
    """Why the node could not answer (unreachable, no mirror, the script failed)."""
    attempts: Sequence[Sequence[Attempt]] = ()
    """Per image (in ``requiredImages`` order): each mirror endpoint's answer, in order."""
    endpoints: Sequence[str] = ()


@dataclass(frozen=True)
class NodeAnswer:
    """One image on one node."""

    status: NodeStatus
    digest: str | None = None
    endpoint: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class ImageVerdict:
    """One image at the site."""

    image: ImageReference
    in_scope: bool | None
    """None: the scope could not be worked out (see the site's problems)."""
    cloud: CloudImage
    synced: bool | None
    """None: unknown (no digest or push time, or ARM unread)."""
    nodes: Mapping[str, NodeAnswer]
    gaps: Sequence[str]

    @property
    def ready(self) -> bool:
        return not self.gaps


@dataclass(frozen=True)
class Readiness:
    """The whole answer for one site."""

    stack: str
    login_server: str | None
    last_sync_time: datetime | None
    hosts: Sequence[str]
    images: Sequence[ImageVerdict]
    problems: Sequence[str] = field(default_factory=tuple)
    """Site-wide: what could not be read (ARM, the catalog) and so leaves every image unconfirmed."""

    @property
    def ready(self) -> bool:
        return not self.problems and all(image.ready for image in self.images)

    @property
    def gaps(self) -> list[str]:
        return [*self.problems, *(gap for image in self.images for gap in image.gaps)]


def _short(digest: str | None) -> str:
    return digest[:19] if digest else "-"


def node_answer(expected: str | None, attempts: Sequence[Attempt]) -> NodeAnswer:
    """One node's answer for one image, against the digest the parent registry gives it."""
    if not attempts:
        return NodeAnswer("error", detail="the node's mirror has no endpoint")
    found = next((a for a in attempts if a.status == "ok"), None)
    if found is not None:
        if expected is None:
            return NodeAnswer("unverified", found.digest, found.endpoint, "not compared: no digest from the parent registry")
        if found.digest == expected:
            return NodeAnswer("ok", found.digest, found.endpoint)
        return NodeAnswer("differs", found.digest, found.endpoint,
                          f"the mirror {found.endpoint} resolves it to {found.digest}, the parent registry to {expected}")
    if all(a.status == "http-404" for a in attempts):
        return NodeAnswer("missing", None, attempts[0].endpoint,
                          f"not on the mirror {', '.join(a.endpoint for a in attempts)} (404)")
    detail = "; ".join(f"{a.endpoint}: {a.status}{' ' + a.detail if a.detail else ''}" for a in attempts)
    return NodeAnswer("error", None, attempts[0].endpoint, detail)


def judge(
    stack: str,
    images: Sequence[ImageReference],
    *,
    login_server: str | None,
    scope: Sequence[str] | None,
    cloud: Mapping[ImageReference, CloudImage],
    last_sync_time: datetime | None,
    nodes: Mapping[str, NodeCheck],
    problems: Sequence[str] = (),
    repositories: Sequence[str] = (),
    sync_known: bool = True,
) -> Readiness:
    """Each image's verdict. ``scope`` None: unknown (a site problem says why); ``repositories``:
    the configured entries, for the message; ``last_sync_time`` None with ``sync_known``: never
    synced (``sync_known`` False: ARM could not be read, a site problem says so)."""
    verdicts = []
    for index, image in enumerate(images):
        gaps: list[str] = []
        in_scope = None if scope is None else image.repository in scope
        if in_scope is False:
            gaps.append(
                f"{image}: the repository {image.repository} is not in the sync scope "
                f"(repositories: {', '.join(repositories) or '-'}): add it to edge-registry:repositories and run pulumi up"
            )
        found = cloud.get(image, CloudImage(None, error="not read"))
        expected = found.digest or image.digest
        if found.error:
            gaps.append(f"{image}: {found.error}")
        elif found.digest is None:
            gaps.append(f"{image}: not in the parent registry {login_server or ''}".rstrip())
        elif image.digest and found.digest != image.digest:
            gaps.append(f"{image}: the parent registry gives {found.digest}")
        synced: bool | None = None
        if found.digest and sync_known:
            if last_sync_time is None:
                synced = False
                gaps.append(f"{image}: the connected registry has never synced")
            elif found.pushed_at is None:
                gaps.append(f"{image}: the parent registry reports no push time, so the sync cannot be confirmed")
            else:
                synced = last_sync_time >= found.pushed_at
                if not synced:
                    gaps.append(
                        f"{image}: pushed {found.pushed_at.isoformat()}, after the last sync "
                        f"{last_sync_time.isoformat()}: the site has not synced it yet"
                    )
        answers: dict[str, NodeAnswer] = {}
        for host, check in nodes.items():
            if check.problem is not None:
                answers[host] = NodeAnswer("error", detail=check.problem)
            else:
                answers[host] = node_answer(expected, check.attempts[index] if index < len(check.attempts) else ())
            answer = answers[host]
            if answer.status in ("missing", "differs", "error"):
                gaps.append(f"{image} on {host}: {answer.detail}")
        verdicts.append(ImageVerdict(image, in_scope, found, synced, answers, tuple(gaps)))
    return Readiness(stack, login_server, last_sync_time, tuple(nodes), tuple(verdicts), tuple(problems))


def as_json(readiness: Readiness) -> dict[str, Any]:
    """The ``--json`` document."""
    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "stack": readiness.stack,
        "ready": readiness.ready,
        "loginServer": readiness.login_server,
        "lastSyncTime": when(readiness.last_sync_time),
        "nodes": list(readiness.hosts),
        "problems": list(readiness.problems),
        "images": [
            {
                "image": str(v.image),
                "repository": v.image.repository,
                "reference": v.image.reference,
                "ready": v.ready,
                "inSyncScope": v.in_scope,
                "cloudDigest": v.cloud.digest,
                "pushedAt": when(v.cloud.pushed_at),
                "synced": v.synced,
                "nodes": {
                    host: {"status": a.status, "digest": a.digest, "endpoint": a.endpoint, "detail": a.detail}
                    for host, a in v.nodes.items()
                },
                "gaps": list(v.gaps),
            }
            for v in readiness.images
        ],
        "gaps": readiness.gaps,
    }


def table(readiness: Readiness) -> str:
    """The image × node table, then one line per gap."""
    header = ["image", "scope", "cloud digest", "synced", *readiness.hosts]

    def yes(value: bool | None) -> str:
        return "?" if value is None else ("yes" if value else "NO")

    rows = [header]
    for v in readiness.images:
        cloud = _short(v.cloud.digest) if v.cloud.digest else ("error" if v.cloud.error else "missing")
        rows.append([str(v.image), yes(v.in_scope), cloud, yes(v.synced), *(v.nodes[h].status for h in readiness.hosts)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    sync = readiness.last_sync_time.isoformat() if readiness.last_sync_time else "never (or unknown)"
    lines.insert(0, f"site {readiness.stack}: parent {readiness.login_server or '?'}, last sync {sync}")
    if readiness.ready:
        lines.append(f"ready: {len(readiness.images)} image(s) on {len(readiness.hosts)} node(s)")
    else:
        lines.append("gaps:")
        lines += [f"  {gap}" for gap in readiness.gaps]
    return "\n".join(lines) + "\n"
