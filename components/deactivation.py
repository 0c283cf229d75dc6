# Existing stacks' state names this module: dynamic providers are pickled by reference. Keep it.
from components.azure.deactivation import ConnectedRegistryDeactivation, ConnectedRegistryDeactivationProvider  # noqa: F401
