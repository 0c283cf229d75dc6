"""What one offline render returns: every resource as the engine would see it registered
(:class:`RenderedResource`) and the whole evaluation (:class:`RenderResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from components.preview.values import integers, is_secret, mask, mask_leaves, reveal


@dataclass
class RenderedResource:
    """One resource as the engine would see it registered."""

    type: str
    name: str
    urn: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    dependencies: list[str]
    options: dict[str, Any]
    secret_paths: list[str]
    provider: str | None = None
    secret_leaves: dict[str, list[str]] = field(default_factory=dict)
    """Per input whose whole value is a secret on the wire (the SDK lifts a nested secret to the
    top-level property): the dotted paths inside it that hold the secret. Masks only those."""
    serialized_provider: str | None = None
    """Dynamic resources: the dill-pickled provider as the engine would store it in the state."""

    def shown_inputs(self, show_secrets: bool) -> dict[str, Any]:
        """Inputs for people: secrets as ``[secret]`` (one by one where the program says which
        leaves are secret), whole numbers as integers, unknowns as ``(known after apply)``."""
        if show_secrets:
            return integers(reveal(self.inputs))
        shown: dict[str, Any] = {}
        for key, value in self.inputs.items():
            leaves = self.secret_leaves.get(key)
            if leaves and is_secret(value) and isinstance(reveal(value), dict):
                shown[key] = mask_leaves(reveal(value), leaves)
            else:
                shown[key] = mask(value)
        return integers(shown)

    def as_json(self, show_secrets: bool) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "urn": self.urn,
            "parent": self.parent,
            "inputs": self.shown_inputs(show_secrets),
            "dependencies": self.dependencies,
            "options": self.options,
            "secretPaths": self.secret_paths,
        }

    def plain_inputs(self) -> dict[str, Any]:
        """Inputs with secret wrappers removed (for assertions on values)."""
        return reveal(self.inputs)


@dataclass
class RenderResult:
    """Everything one evaluation registered, in registration order, plus the stack outputs."""

    resources: list[RenderedResource]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    warnings: list[str] = field(default_factory=list)
    node_summaries: dict[str, str] = field(default_factory=dict)
    """Per NodeMirror name: what this run does to the node (the diagnostic the program logs)."""

    def by_type(self, type_: str) -> list[RenderedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name_suffix: str = "") -> RenderedResource:
        found = [r for r in self.by_type(type_) if r.name.endswith(name_suffix)]
        if len(found) != 1:
            raise LookupError(f"expected one {type_} ending in {name_suffix!r}, found {[r.name for r in found]}")
        return found[0]

    def by_urn(self, urn: str) -> RenderedResource:
        return next(r for r in self.resources if r.urn == urn)
