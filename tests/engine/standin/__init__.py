"""Stand-in provider plugins for the engine tier (tests/engine/README.md, "Stand-in providers")."""
