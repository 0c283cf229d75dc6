"""edge-registry: one site's connected registry, on-prem install, node mirrors and pull secrets."""

from components.site import run

run()
