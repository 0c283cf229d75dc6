"""The images a site's workloads need (``requiredImages``): read by ``python -m components ready``.

The program itself only validates the list (it declares nothing from it): the readiness check
(components/ready/) looks each image up in the parent registry, in the sync scope, in the last
sync and through every node's mirror. An entry is a repository of the parent registry with a tag
(``samples/hello:1.0``) or a digest (``samples/hello@sha256:<64 hex>``), without the registry's
host: every site pulls it as ``<loginServer>/<entry>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import Field, field_validator

from components.config.azure import REPOSITORY_RE
from components.config.fields import ConfigModel, ValueEcho

# OCI distribution spec: a tag is at most 128 word characters, dots and dashes, not starting with
# either; a digest here is sha256 (what ACR and containerd compute).
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")


@dataclass(frozen=True)
class ImageReference:
    """One required image: its repository and either a tag or a digest."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/`` in the registry API: the tag or the digest."""
        return self.digest or self.tag or ""

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"


def image_problem(entry: str) -> str | None:
    """What is wrong with one ``requiredImages`` entry, or None."""
    repository, at, digest = entry.partition("@")
    tag = None
    if not at:
        repository, colon, tag = entry.rpartition(":")
        if not colon or "/" in tag:
            return f"{entry!r}: expected `repository:tag` or `repository@sha256:<64 hex>`"
    first = repository.split("/", 1)[0]
    if "/" in repository and ("." in first or ":" in first or first == "localhost"):
        return (f"{entry!r}: name the repository without the registry host ({first!r}): every site pulls it "
                "from the parent registry's login server")
    if not REPOSITORY_RE.fullmatch(repository):
        return f"{entry!r}: the repository {repository!r} is not a lower-case repository name (OCI grammar)"
    if at and not DIGEST_RE.fullmatch(digest):
        return f"{entry!r}: the digest is not sha256:<64 lower-case hex digits>"
    if tag is not None and not TAG_RE.fullmatch(tag):
        return f"{entry!r}: the tag {tag!r} is not 1-128 letters, digits, '_', '.' or '-' (not starting with '.' or '-')"
    return None


def parse_image(entry: str) -> ImageReference:
    """A validated entry as an :class:`ImageReference`. :raises ValueError: the entry's problem."""
    problem = image_problem(entry)
    if problem:
        raise ValueError(problem)
    repository, at, digest = entry.partition("@")
    if at:
        return ImageReference(repository, digest=digest)
    repository, _, tag = entry.rpartition(":")
    return ImageReference(repository, tag=tag)


class ImageSettings(ConfigModel):
    """The images the site's workloads need (a part of :class:`~components.config.site.SiteConfig`)."""

    required_images: tuple[str, ...] = Field(
        (), alias="requiredImages",
        description=(
            "Images the site's workloads need, `repository:tag` or `repository@sha256:<digest>` (no registry host); "
            "`python -m components ready` checks each one in the sync scope, the parent registry, the last sync "
            "and through every node's mirror ([operations](docs/operations.md#image-readiness)). The program "
            "only validates the list."
        ),
    )

    @field_validator("required_images")
    @classmethod
    def _images(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        problems = [problem for entry in value if (problem := image_problem(entry))]
        if problems:
            count = "an entry is" if len(problems) == 1 else f"{len(problems)} entries are"
            raise ValueEcho("; ".join(problems), f"{count} not `repository:tag` or `repository@sha256:<digest>`")
        dupes = sorted({entry for entry in value if value.count(entry) > 1})
        if dupes:
            raise ValueEcho(f"listed more than once: {', '.join(dupes)}", "an entry is listed more than once")
        return value

    @property
    def required_image_references(self) -> tuple[ImageReference, ...]:
        """The entries parsed (they are valid once the model exists)."""
        return tuple(parse_image(entry) for entry in self.required_images)
