"""The Azure side of a site: ARM calls, the connected registry, its scope maps, tokens and passwords."""
