"""Cloud-only runs: Azure-side changes for a site whose cluster and nodes cannot be reached.

A ship at sea cannot take an edge change, but a new repository to sync or a new client token is
pure Azure. With ``cloudOnly: true`` the program still declares every edge resource (namespace,
Helm release, pull secrets, ServiceAccount patches, node commands), so the engine neither deletes
nor forgets any of them, but:

* every input of every edge resource is in ``ignore_changes``: the engine keeps the stored
  inputs, diffs them against themselves and finds nothing to do, so no provider touches the
  cluster or a node (:func:`hold_edge_resource`);
* nothing is read from the cluster at program time: the endpoint comes from the pinned
  ``serviceClusterIP`` (required in this mode) instead of the chart's Service, and the
  ``default`` ServiceAccounts are not read;
* no password rotation starts (``rotateBeforeDays`` is 0 for the run): a new sync password could
  not reach the Helm release, and a new client password could not reach the pull secrets.

The next run without ``cloudOnly`` diffs the edge resources against the new Azure values (the
connection string, the client password) and completes the edge side. What this mode cannot do:
create an edge resource that is not in the state yet (a new node, namespace or the first install)
— that create fails on the unreachable cluster; add those after the site is back. See
docs/runbooks.md ("Sites that cannot be reached").
"""

from __future__ import annotations

import pulumi

#: Why the edge is held, for the log.
HELD_NOTE = (
    "cloudOnly: edge resources (Helm release, namespaces, pull secrets, node commands) are kept as "
    "they are; the next run without cloudOnly applies the edge side"
)


def edge_input_names(props: dict[str, object]) -> list[str]:
    """The inputs a held resource ignores: every input the program passes (engine-internal
    ``__``-prefixed ones excepted). Not the None ones: the generated SDKs list their output-only
    properties (a command's ``stdout``) as None, and a provider built on pulumi-go-provider copies
    each ignored key from the state into the new inputs, which then differ (tests/engine/README.md,
    "The site tier")."""
    return sorted(key for key, value in props.items() if not key.startswith("__") and value is not None)


def hold_edge_resource(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    """Transformation for an edge component: its custom resources keep their stored inputs.

    Providers are left alone (their inputs are the same in both modes, and they are needed to
    diff); components only pass the transformation on to their children.
    """
    if not isinstance(args.resource, pulumi.CustomResource) or isinstance(args.resource, pulumi.ProviderResource):
        return None
    # One list, each name once: merging would repeat what the resource already ignores.
    ignored = sorted({*(args.opts.ignore_changes or []), *edge_input_names(dict(args.props))})
    held = pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions())
    held.ignore_changes = ignored
    return pulumi.ResourceTransformationResult(args.props, held)


def edge_options(cloud_only: bool, opts: pulumi.ResourceOptions) -> pulumi.ResourceOptions:
    """``opts`` for an edge component, holding its resources when the run is cloud-only."""
    if not cloud_only:
        return opts
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(transformations=[hold_edge_resource]))
