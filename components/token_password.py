# Existing stacks' state names this module: dynamic providers are pickled by reference. Keep it.
from components.azure.token_password import TokenPassword, TokenPasswordProvider  # noqa: F401
