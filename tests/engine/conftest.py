"""The engine tier's rule for skips: ``scripts/engine test`` (and so ``.ci/run``) sets
EDGE_REGISTRY_REQUIRE_ENGINE, and then a test of this folder that would skip (engine not built,
no sshd, run under xdist) fails instead, so CI cannot pass with the tier silently not run. The
fast suite (``scripts/test``) leaves it unset and skips what it cannot run."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

REQUIRE_ENV = "EDGE_REGISTRY_REQUIRE_ENGINE"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get(REQUIRE_ENV) and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped while {REQUIRE_ENV} is set (scripts/engine test): {reason}"
