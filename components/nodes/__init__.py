"""The site's k3s nodes: registries.yaml merging, the node payload and plan, reads and remote commands."""
