"""Config key *names*: which keys exist, which hold secrets, which were retired, and the checks
that read only names (values stay unread, so secrets too): unprefixed keys, misspelt namespaces,
unknown keys with a "did you mean", keys set with ``--secret`` that cannot stay secret.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from functools import lru_cache

from components.config.fields import PROJECT, full_key
from components.config.site import SiteConfig

#: Config keys whose values are secrets: never printed, always wrapped in ``Output.secret``.
SECRET_KEYS = frozenset({
    "kubeconfig", "sshPrivateKey", "tlsCaCertificate", "tlsCaKey", "tlsCertificate", "tlsKey",
    "adoptSyncPassword", "adoptClientPassword",
})
#: Keys that may be set with ``--secret``: the secret ones and ``chartValues``, whose secret
#: leaves (``--secret --path chartValues.x``) stay secrets in the Helm values. Every other key
#: ends up in resource names, ids, commands or plain outputs, so a secret there is refused.
SECRET_CAPABLE_KEYS = SECRET_KEYS | {"chartValues"}

#: Keys that no longer exist, with what replaced them (a clearer message than "unknown setting").
RETIRED_KEYS = {
    "mirrorCaFile": "no longer used: the program installs the site CA next to registries.yaml on every node "
    "(docs/nodes.md); to keep a CA of your own, set it as tlsCaCertificate (and tlsCaKey, or tlsCertificate "
    "and tlsKey) and remove mirrorCaFile",
}

#: Every key of this project's namespace.
PROJECT_KEYS = frozenset(field.alias or name for name, field in SiteConfig.model_fields.items())


@lru_cache(maxsize=1)
def azure_native_keys() -> frozenset[str]:
    """The azure-native provider's config keys, read from the installed SDK (its config module
    lists exactly what the provider reads), so a new provider version needs no list kept by hand."""
    import inspect

    from pulumi_azure_native.config import vars as provider_vars

    return frozenset(re.findall(r"__config__\.get\w*\('(\w+)'", inspect.getsource(provider_vars)))


def did_you_mean(name: str, candidates: Iterable[str], namespace: str = PROJECT) -> str:
    """'; did you mean `ns:key`?' for the closest known key, or a pointer to the reference."""
    choices = sorted(set(candidates))
    prefix = f"{namespace}:" if namespace else ""
    same_but_case = [c for c in choices if c.lower() == name.lower()]
    close = same_but_case or difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean `{prefix}{close[0]}`?"
    return "; see the configuration reference in docs/configuration.md"


#: The namespaces whose keys are checked by name: this project's and the provider it configures.
CHECKED_NAMESPACES = (PROJECT, "azure-native")
#: How close (difflib ratio) another namespace must be to one of those to be read as its typo:
#: one letter missing, extra, wrong or swapped (``edge-registy``, ``azure-natvie``) is above 0.9;
#: real providers' namespaces (``azure``, ``azuread``, ``kubernetes``, ``command``, ``pulumi``) are
#: below 0.65.
NAMESPACE_TYPO_CUTOFF = 0.9


def namespace_typo(namespace: str) -> str | None:
    """The checked namespace that ``namespace`` is a misspelling of, or None (it is one of them, or
    another provider's: Pulumi passes those to their providers, which the program does not read)."""
    if namespace in CHECKED_NAMESPACES:
        return None
    same_but_case = [n for n in CHECKED_NAMESPACES if n.lower() == namespace.lower()]
    close = same_but_case or difflib.get_close_matches(namespace, CHECKED_NAMESPACES, n=1, cutoff=NAMESPACE_TYPO_CUTOFF)
    return close[0] if close else None


def key_problems(keys: Iterable[str]) -> list[str]:
    """Problems with config key *names* (values are not read, so secrets stay unread): unprefixed
    keys, misspelt namespaces of this project or azure-native, and unknown keys of those two
    namespaces, each with a "did you mean". ``keys`` are full keys as in a stack file
    (``namespace:name``)."""
    problems: list[str] = []
    for key in keys:
        namespace, sep, name = key.partition(":")
        if sep and (meant := namespace_typo(namespace)) is not None:
            # Nothing reads a misspelt namespace: the value would be dropped without a word.
            known = PROJECT_KEYS if meant == PROJECT else azure_native_keys()
            hint = f"; did you mean `{meant}:{name}`?" if name in known else did_you_mean(name, known, meant)
            if hint.startswith("; see"):
                hint = f"; did you mean the namespace `{meant}`?"
            problems.append(f"{key}: unknown namespace `{namespace}`, so no one reads this key{hint}")
        elif not sep:
            hint = (f"write `{PROJECT}:{key}`" if key in PROJECT_KEYS
                    else f"write it with its namespace{did_you_mean(key, PROJECT_KEYS)}")
            problems.append(f"{key}: a stack config key needs its namespace (Pulumi refuses `{key}`): {hint}")
        elif namespace == PROJECT and name in RETIRED_KEYS:
            problems.append(f"{key}: {RETIRED_KEYS[name]}")
        elif namespace == PROJECT and name not in PROJECT_KEYS:
            problems.append(f"{key}: unknown setting{did_you_mean(name, PROJECT_KEYS)}")
        elif namespace == "azure-native" and name not in azure_native_keys():
            problems.append(
                f"{key}: not a setting of the azure-native provider{did_you_mean(name, azure_native_keys(), namespace)}"
            )
    return problems


def secret_key_problems(secret_keys: frozenset[str]) -> list[str]:
    """Keys set with ``--secret`` whose values the program cannot keep secret."""
    return [
        f"{full_key(key)}: is set as a secret, but only {', '.join(sorted(SECRET_CAPABLE_KEYS))} stay secret "
        "(this value goes into resource names, commands or plain outputs): set it without --secret"
        for key in sorted(secret_keys - SECRET_CAPABLE_KEYS)
    ]
