"""Suite-wide guard and shared fixtures.

Guard: no test renders a stack file at the repository root. Those are the adopter's (the example
``Pulumi.dev.yaml`` and real sites); tests use ``tests/stacks`` (tests/fixture_stacks.py). A test
that forgets ``stack_dir`` fails here with that advice instead of passing until someone edits the
example.

Fixtures: the local ARM server (tests/arm_server.py) and an ARM client factory that trusts it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from components.azure.arm import ArmClient
from tests.arm_server import ArmServer, FakeCredential
from tests.fixture_stacks import ROOT


@pytest.fixture(autouse=True, scope="session")
def _no_root_stack_files() -> Iterator[None]:
    from components.config import stack_files

    real = stack_files.load_stack_config

    def guarded(project_dir: Path, stack: str, stack_dir: Path | None = None) -> Any:
        where = Path(stack_dir if stack_dir is not None else project_dir).resolve()
        if where == ROOT:
            pytest.fail(
                f"a test rendered Pulumi.{stack}.yaml from the repository root, which belongs to the "
                "adopter: pass stack_dir=tests.fixture_stacks.STACK_DIR (or --stack-dir tests/stacks)"
            )
        return real(project_dir, stack, stack_dir)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stack_files, "load_stack_config", guarded)
        yield


@pytest.fixture
def arm(tmp_path: Path) -> Iterator[ArmServer]:
    with ArmServer(tmp_path) as server:
        yield server


@pytest.fixture
def credential() -> FakeCredential:
    return FakeCredential()


@pytest.fixture
def client_factory(arm: ArmServer, credential: FakeCredential) -> Callable[[str, str | None], ArmClient]:
    """What the providers use in place of DefaultAzureCredential: fake credential, test CA, no waits."""

    def make(subscription_id: str, endpoint: str | None) -> ArmClient:
        return ArmClient(
            subscription_id,
            arm_endpoint=endpoint,
            credential=credential,
            polling_interval=0,
            connection_verify=arm.ca_pem,
            retry_total=0,
        )

    return make


@pytest.fixture(autouse=True)
def _unwrapped_pickler() -> Iterator[None]:
    """Every dynamic resource declared wraps pickle's ``_batch_setitems`` once more (an SDK bug:
    components/preview/loop.py ``unwrap_pickler``); tests that declare them outside a render
    would pile up the wrapping across the session until the recursion limit."""
    yield
    from components.preview.loop import unwrap_pickler

    unwrap_pickler()
