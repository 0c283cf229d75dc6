"""The settings of a site's nodes: each k3s node (:class:`NodeConfig`), how the program reaches
them over SSH (key or agent, the account previews read as) and what their mirror configuration says.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from components.config.fields import ConfigBool, ConfigInt, ConfigModel, OptionalName, host_problem, is_placeholder

UNIT_RE = re.compile(r"(k3s|k3s-agent|k3s-[A-Za-z0-9_.-]+|rke2-server|rke2-agent)")
ABS_PATH_RE = re.compile(r"/[A-Za-z0-9._/-]+")
HOST_KEY_RE = re.compile(
    r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521) [A-Za-z0-9+/=]+( .*)?"
)
POSIX_USER_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")


class NodeConfig(ConfigModel):
    """One k3s node whose containerd must pull through the connected registry."""

    host: str = Field(description="Address or DNS name that SSH reaches the node on.")
    port: ConfigInt = Field(22, ge=1, le=65535, description="SSH port.")
    user: str = Field("root", description="SSH user; non-root users need passwordless `sudo -n`.")
    role: Literal["server", "agent"] = Field(description="k3s role: server or agent.")
    unit: OptionalName = Field(None, description="Service unit override (k3s, k3s-agent, k3s-<name>, rke2-*).")
    path: str = Field(
        "/etc/rancher/k3s/registries.yaml",
        description="registries.yaml path (RKE2: /etc/rancher/rke2/registries.yaml).",
    )
    host_key: OptionalName = Field(
        None, alias="hostKey",
        description="Pinned SSH host public key (`ssh-ed25519 AAAA…` or ECDSA), the only key the read and the write "
        "accept; required unless `gone` (get it with `python -m components host-key <site> --node <host>`).",
    )
    gone: ConfigBool = Field(False, description="The node no longer exists: never contact it again.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        problem = host_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        if not POSIX_USER_RE.fullmatch(value):
            raise ValueError("expected a POSIX user name")
        return value

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str | None) -> str | None:
        if value is not None and not UNIT_RE.fullmatch(value):
            raise ValueError("expected k3s, k3s-agent, k3s-<name>, rke2-server or rke2-agent")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not ABS_PATH_RE.fullmatch(value) or "/../" in value or not value.endswith((".yaml", ".yml")):
            raise ValueError("expected an absolute path to a .yaml file")
        parts = value.split("/")[1:]
        if "" in parts or "." in parts or ".." in parts:
            # The node scripts refuse them too (components/nodes/paths.py): the record and the
            # lock beside the file must have one name.
            raise ValueError("expected the file's canonical path: no '//', '/./' or '/../'")
        return value

    @field_validator("host_key")
    @classmethod
    def _host_key(cls, value: str | None) -> str | None:
        if value is not None and not HOST_KEY_RE.fullmatch(value.strip()):
            raise ValueError("expected an OpenSSH public key line such as 'ssh-ed25519 AAAA…'")
        if value is not None and value.strip().startswith("ssh-rsa "):
            # pulumi-command offers only the pinned key's algorithm; for ssh-rsa that is SHA-1
            # signatures, which OpenSSH 8.8 and later refuse, so the write would fail mid-`up`.
            raise ValueError(
                "an ssh-rsa key cannot be pinned (the node command would offer only SHA-1 signatures, "
                "which OpenSSH 8.8+ refuses): pin the node's ed25519 or ECDSA key, e.g. the line "
                "`ssh-keyscan -t ed25519 HOST` prints, compared with /etc/ssh/ssh_host_ed25519_key.pub on the node"
            )
        return value.strip() if value else value

    @property
    def service_unit(self) -> str:
        """The unit to restart: the override, else the k3s default for the role."""
        return self.unit or ("k3s" if self.role == "server" else "k3s-agent")


class NodeSettings(ConfigModel):
    """The nodes and how to reach them (a part of :class:`~components.config.site.SiteConfig`)."""

    nodes: tuple[NodeConfig, ...] = Field((), description="The k3s nodes to point at the mirror.")
    ssh_private_key: SecretStr | None = Field(None, alias="sshPrivateKey", description="SSH private key for the nodes (set it with --secret).")
    ssh_agent: ConfigBool = Field(
        False, alias="sshAgent",
        description="Authenticate to the nodes with the SSH agent of the machine running pulumi (`SSH_AUTH_SOCK`) "
        "instead of `sshPrivateKey`: the key is never in the stack's config or state (what CI uses, see "
        "[preview credentials](docs/runbooks.md#preview-credentials)).",
    )
    preview_node_user: OptionalName = Field(
        None, alias="previewNodeUser",
        description="Node account previews read as, with the installed read script (`edge-registry-read`, see "
        "[preview credentials](docs/runbooks.md#nodes-once-per-node)); unset: the node's `user`, like the write.",
    )
    node_restart_timeout_seconds: ConfigInt = Field(
        120, alias="nodeRestartTimeoutSeconds", ge=10, le=1800,
        description="How long to wait for k3s to be active after a restart.",
    )
    mirror_login_server: ConfigBool = Field(
        True, alias="mirrorLoginServer",
        description="Nodes also mirror the parent's login server (`<registry>.azurecr.io`) to the site registry.",
    )
    mirror_insecure_skip_verify: ConfigBool = Field(
        False, alias="mirrorInsecureSkipVerify", description="Skip TLS verification of the mirror."
    )

    @field_validator("preview_node_user")
    @classmethod
    def _preview_node_user(cls, value: str | None) -> str | None:
        if value is not None and not POSIX_USER_RE.fullmatch(value):
            raise ValueError("expected a POSIX user name")
        return value

    @field_validator("ssh_private_key")
    @classmethod
    def _ssh_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or is_placeholder(value.get_secret_value()):
            return value
        text = value.get_secret_value().strip()
        if not re.fullmatch(r"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----.*-----END.*", text, re.DOTALL):
            raise ValueError("is not a PEM/OpenSSH private key (value not shown: it is a secret)")
        if "ENCRYPTED" in text or "Proc-Type: 4,ENCRYPTED" in text:
            raise ValueError("is passphrase-protected; pulumi-command needs an unencrypted key (value not shown)")
        return value


#: How an operator gets a node's host key; the config rule's message points at it.
HOST_KEY_HOW = (
    "scan it with `python -m components host-key <site> --node {host}`, compare the fingerprint it prints "
    "with the node's console (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`) and confirm"
)


def host_key_problems(nodes: object) -> list[tuple[str, str, tuple[str, ...]]]:
    """Every node that is not ``gone`` pins its SSH host key (issue 20): without ``hostKey`` whoever
    answers on the node's address would get the client token's password. On validated nodes or
    raw ones, as :func:`~components.config.site.cross_field_problems` gives problems; a node
    whose ``gone`` is not a boolean has that problem of its own, so none is added for it."""
    problems: list[tuple[str, str, tuple[str, ...]]] = []
    if not isinstance(nodes, (list, tuple)):
        return problems
    for index, node in enumerate(nodes):
        gone: Any
        host_key: Any
        host: Any
        if isinstance(node, NodeConfig):
            gone, host_key, host = node.gone, node.host_key, node.host
        elif isinstance(node, dict):
            gone, host_key, host = node.get("gone", False), node.get("hostKey"), node.get("host")
        else:
            continue
        if isinstance(gone, str) and gone.lower() in ("true", "false"):
            gone = gone.lower() == "true"
        if not isinstance(gone, bool) or gone or host_key is not None:
            continue
        shown = host if isinstance(host, str) and host_problem(host) is None else "HOST"
        problems.append((
            f"nodes[{index}].hostKey",
            "required for every node that is not gone: without a pinned host key SSH trusts whoever answers on "
            "the node's address with the node's credentials; " + HOST_KEY_HOW.format(host=shown),
            ("nodes",),
        ))
    return problems
