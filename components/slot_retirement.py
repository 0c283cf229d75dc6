# Existing stacks' state names this module: dynamic providers are pickled by reference. Keep it.
from components.azure.slot_retirement import SlotRetirement, SlotRetirementProvider  # noqa: F401
