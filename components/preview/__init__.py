"""The offline render: a site's stack evaluated as ``pulumi preview`` would, and the policy check."""
