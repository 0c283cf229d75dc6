"""The node payload protocol: what ``scripts/read.sh`` prints and what ``apply.sh`` reads.

Both directions are line-oriented text that POSIX sh can produce and parse: ``word value``
header lines, then ``begin NAME`` / base64 lines / ``end NAME`` sections (coreutils/busybox
``base64`` wrapping). The program side of the protocol lives here, the node side in
``scripts/`` (see docs/nodes.md); the real-sshd tests check that the two agree.

To add a field (as the https CA was: a ``ca`` line both ways, a ``ca`` section in the payload;
and the ``generation`` line, recorded in ``applied``): add a header line or a section on both
sides; :func:`parse_read_output` and :func:`decode_apply_stdin` ignore what they do not
know, ``apply.sh`` fails on an unknown line (so an old script never half-understands a payload).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from components.nodes import registries_yaml as ry

__all__ = [
    "READ_HEADER",
    "APPLY_HEADER",
    "ApplyPlan",
    "NodeMirrorError",
    "NodeRead",
    "apply_stdin",
    "decode_apply_stdin",
    "file_sha",
    "parse_read_output",
    "render_read_output",
]

READ_HEADER = "edge-registry-read 2"
"""First line of read.sh's output (2: adds the ``applied`` line). Later additions kept the
version, because an older script's output still parses: the ``ca`` line (missing from a read
script installed before it, so :attr:`NodeRead.ca` is None), the generation in ``applied``
(printed by any version-2 script, which prints that file as it is) and the ``ca`` section (the
installed CA file; :attr:`NodeRead.ca_content` None from an older script)."""
APPLY_HEADER = "edge-registry-apply 1"
"""First line of the apply payload."""
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class NodeMirrorError(Exception):
    """A node's file or the node's answer cannot be used; the message names host and path."""


def file_sha(data: bytes | None) -> str:
    """sha256 of a file's bytes as the node scripts print it; ``absent`` when there is no file."""
    return "absent" if data is None else hashlib.sha256(data).hexdigest()


def _b64_lines(data: bytes) -> list[str]:
    # Same wrapping as coreutils/busybox base64 (76 columns), so the render matches the node.
    return base64.encodebytes(data).decode("ascii").splitlines()


def _owned_text(keys: Sequence[ry.OwnedKey]) -> bytes:
    return "".join(f"{section} {key}\n" for section, key in keys).encode("utf-8")


def _owned_keys(text: bytes) -> tuple[ry.OwnedKey, ...]:
    keys: list[ry.OwnedKey] = []
    for line in text.decode("utf-8").splitlines():
        section, _, key = line.partition(" ")
        if section in ry.SECTIONS and key:
            keys.append((section, key))
    return tuple(keys)


def _split(lines: Sequence[str]) -> tuple[dict[str, str], dict[str, bytes]]:
    """Header fields and decoded sections of a protocol message (without its first line)."""
    fields: dict[str, str] = {}
    sections: dict[str, bytes] = {}
    current: str | None = None
    body: list[str] = []
    for line in lines:
        word, _, value = line.partition(" ")
        if current is not None:
            if word == "end":
                sections[current] = base64.b64decode("".join(body), validate=True)
                current, body = None, []
            else:
                body.append(line)
        elif word == "begin":
            current = value
        else:
            fields[word] = value
    if current is not None:
        raise NodeMirrorError(f"message ends inside section {current!r}")
    return fields, sections


# --------------------------------------------------------------------------- read.sh output


@dataclass(frozen=True)
class NodeRead:
    """What ``read.sh`` reported about one node."""

    content: bytes | None
    """The current registries.yaml, None when there is no file."""
    recorded: bool
    """edge-registry has a record (sidecar with the pristine original) on this node."""
    original: bytes | None = None
    """Pristine bytes before edge-registry's first write (None: there was no file). Only if recorded."""
    written: str | None = None
    """sha256 of what edge-registry last wrote."""
    owned: tuple[ry.OwnedKey, ...] = ()
    """The keys edge-registry owned after its last write."""
    restart_pending: bool = False
    """An earlier run replaced the file but was cut off before the restart finished."""
    applied_expected: str | None = None
    """``expected`` of the payload that last converged the node (None: not recorded)."""
    applied_pending: bool = False
    """``pending`` of the payload that last converged the node."""
    applied_generation: int | None = None
    """``generation`` of the payload that last converged the node (None: not recorded, a
    record older than the generation line)."""
    ca: str | None = "none"
    """sha256 of the CA file edge-registry installed beside the file (``absent``: gone since),
    ``none``: it installed none; None: not reported (a read script older than the CA line)."""
    ca_content: bytes | None = None
    """The CA file edge-registry installed beside the file, as it is on the node (its checksum is
    :attr:`ca`); None: none installed, gone, or not reported (a read script older than the CA
    section). Certificates only: public. The site's CA renewal reads which CAs a node trusts from it
    (components/cluster/ca_renewal.py)."""


def render_read_output(
    content: bytes | None,
    *,
    original: bytes | None = None,
    recorded: bool = False,
    written: str | None = None,
    owned: Sequence[ry.OwnedKey] | None = None,
    restart_pending: bool = False,
    applied_expected: str | None = None,
    applied_pending: bool = False,
    applied_generation: int | None = None,
    ca: str | None = "none",
    ca_content: bytes | None = None,
) -> str:
    """The stdout ``read.sh`` prints (last newline trimmed).

    With the defaults: a node whose registries.yaml is ``content`` (None: no file) and that
    edge-registry never touched. The keywords describe the record beside the file
    (``owned`` None: no owned-keys file; ``applied_expected`` None: no ``applied`` file;
    ``ca_content``: the installed CA file, printed after the record).
    """
    lines = [READ_HEADER, f"file {file_sha(content)}", f"written {written or 'none'}"]
    lines.append(f"original {file_sha(original)}" if recorded else "original none")
    lines.append(f"restart-pending {'yes' if restart_pending else 'no'}")
    if applied_expected is None:
        lines.append("applied none")
    else:
        generation = "" if applied_generation is None else f" {applied_generation}"
        lines.append(f"applied {applied_expected} {'yes' if applied_pending else 'no'}{generation}")
    if ca is not None:
        lines.append(f"ca {ca}")
    sections = [("content", content), ("original", original if recorded else None),
                ("owned", None if owned is None else _owned_text(owned)), ("ca", ca_content)]
    for name, data in sections:
        if data is not None:
            lines += [f"begin {name}", *_b64_lines(data), f"end {name}"]
    return "\n".join(lines)


def parse_read_output(stdout: str) -> NodeRead:
    """Parse what ``read.sh`` printed; raise NodeMirrorError on anything unexpected."""
    lines = stdout.splitlines()
    if not lines or lines[0] != READ_HEADER:
        first = lines[0][:80] if lines else "(nothing)"
        raise NodeMirrorError(f"unexpected output from the read script, first line: {first!r}")
    try:
        fields, sections = _split(lines[1:])
    except ValueError as exc:  # binascii.Error is a ValueError
        raise NodeMirrorError(f"read output is damaged: {exc}") from None
    for name in ("file", "written", "original", "restart-pending", "applied"):
        if name not in fields:
            raise NodeMirrorError(f"read output has no {name!r} line")
    content = sections.get("content")
    ca_content = sections.get("ca")
    if file_sha(content) != fields["file"]:
        raise NodeMirrorError("read output is inconsistent (file checksum); run pulumi up again")
    recorded = fields["original"] != "none"
    original = sections.get("original") if recorded else None
    if recorded and file_sha(original) != fields["original"]:
        raise NodeMirrorError("read output is inconsistent (original checksum)")
    written = fields["written"] if _SHA_RE.fullmatch(fields["written"]) else None
    # "<expected> <pending> [<generation>]", or "none"
    applied_expected, applied_pending, applied_generation = (fields["applied"].split(" ") + ["", ""])[:3]
    if not (_SHA_RE.fullmatch(applied_expected) or applied_expected == "absent"):
        applied_expected, applied_pending, applied_generation = "", "no", ""
    return NodeRead(
        content=content, recorded=recorded, original=original, written=written,
        owned=_owned_keys(sections.get("owned", b"")), restart_pending=fields["restart-pending"] == "yes",
        applied_expected=applied_expected or None, applied_pending=applied_pending == "yes",
        applied_generation=int(applied_generation) if applied_generation.isdigit() else None,
        ca=fields.get("ca"),
        # Only with a matching checksum: a CA file changed between the two reads is not reported.
        ca_content=ca_content if ca_content is not None and fields.get("ca") == file_sha(ca_content) else None,
    )


# --------------------------------------------------------------------------- apply.sh payload


@dataclass(frozen=True)
class ApplyPlan:
    """What the apply command gets: the file to install and what destroy will put back."""

    expected: str
    """sha256 of the file the merge started from ("absent": no file). apply.sh writes only when
    the node's file is this one, or already the desired one."""
    content: bytes
    """The registries.yaml to install."""
    restore: bytes | None
    """What destroy puts back (None: remove the file)."""
    owned: tuple[ry.OwnedKey, ...]
    """Keys this program owns after the write."""
    restart_pending: bool = False
    """Carried from the read so the payload differs and the apply runs to finish a restart."""
    generation: int | None = None
    """Counts the applies that were not a converged node's re-emission: the payload of a node
    that is not converged always differs from the one stored for it, even when the node is
    back in a state it had before (a CA file deleted twice). None: no such line (a node
    converged by a version before the counter)."""
    ca: bytes | None = None
    """https: the site CA to install beside the file (None: none, and one edge-registry installed
    earlier is removed)."""
    ca_file: str | None = None
    """Where the CA goes on the node (beside the file)."""
    document: dict[str, Any] = field(default_factory=dict, compare=False)
    """The merged, validated document."""

    @property
    def desired(self) -> str:
        """sha256 of :attr:`content`."""
        return file_sha(self.content)


def apply_stdin(plan: ApplyPlan) -> str:
    """The payload ``apply.sh`` reads on stdin: checksums, then base64 sections."""
    lines = [
        APPLY_HEADER,
        f"expected {plan.expected}",
        f"desired {plan.desired}",
        f"restore {file_sha(plan.restore)}",
        f"pending {'yes' if plan.restart_pending else 'no'}",
    ]
    if plan.generation is not None:
        lines.append(f"generation {plan.generation}")
    lines.append(f"ca {file_sha(plan.ca) if plan.ca is not None else 'none'}")
    if plan.ca is not None:
        lines += [f"ca-file {plan.ca_file}", "begin ca", *_b64_lines(plan.ca), "end ca"]
    lines += ["begin content", *_b64_lines(plan.content), "end content"]
    if plan.restore is not None:
        lines += ["begin restore", *_b64_lines(plan.restore), "end restore"]
    lines += ["begin owned", *_b64_lines(_owned_text(plan.owned)), "end owned"]
    return "\n".join(lines) + "\n"


def decode_apply_stdin(stdin: str) -> ApplyPlan:
    """The plan inside an apply payload (for the offline render: show the file in clear)."""
    lines = stdin.splitlines()
    if not lines or lines[0] != APPLY_HEADER:
        raise NodeMirrorError("not an edge-registry apply payload")
    fields, sections = _split(lines[1:])
    content = sections.get("content", b"")
    return ApplyPlan(
        expected=fields.get("expected", ""), content=content, restore=sections.get("restore"),
        owned=_owned_keys(sections.get("owned", b"")), restart_pending=fields.get("pending") == "yes",
        generation=int(fields["generation"]) if fields.get("generation", "").isdigit() else None,
        ca=sections.get("ca"), ca_file=fields.get("ca-file"), document=ry.parse(content),
    )
