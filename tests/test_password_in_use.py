"""The record of the client password in use (components/azure/password_in_use.py): when a preview
of a TokenPassword step (its outputs unknown) may change what the consumers use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pulumi.runtime.rpc import UNKNOWN

from components.azure import rotation
from components.azure.password_in_use import PasswordInUseProvider, may_switch

AT = datetime(2026, 6, 1, tzinfo=UTC)
STATE = {"slot": "password1", "value": "v1", "expiry": "2026-06-20T00:00:00Z"}
UNKNOWN_INPUTS = {"slot": UNKNOWN, "value": UNKNOWN, "expiry": UNKNOWN}


@pytest.mark.parametrize(
    "present, synced, state, expected",
    [
        (["password1"], ["password1"], STATE, False),  # ISSUE: the new slot does not exist yet
        (["password1", "password2"], ["password1"], STATE, False),  # issued, not synced: waits
        (["password1", "password2"], ["password1", "password2"], STATE, True),  # synced: SWITCH
        (["password2"], ["password2"], STATE, True),  # the password in use is gone
        (["password1", "password2"], ["password1"], {**STATE, "expiry": "2026-05-01T00:00:00Z"}, True),  # expired
        (["password1"], ["password1"], {**STATE, "expiry": "2026-05-01T00:00:00Z"}, False),  # expired, nothing else
        (None, None, STATE, True),  # ARM unread: it may
        (["password1"], ["password1"], {"slot": "", "value": "", "expiry": ""}, True),  # nothing recorded
    ],
)
def test_may_switch(
    present: list[str] | None, synced: list[str] | None, state: dict[str, Any], expected: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    news = {**UNKNOWN_INPUTS, "presentSlots": present, "syncedSlots": synced}
    assert may_switch(state, news, AT) is expected
    monkeypatch.setattr(rotation, "now", lambda: AT)
    assert PasswordInUseProvider().diff("id", state, news).changes is expected


def test_known_inputs_change_exactly_when_the_password_in_use_does() -> None:
    provider = PasswordInUseProvider()
    facts = {"presentSlots": ["password1", "password2"], "syncedSlots": ["password1", "password2"]}
    assert not provider.diff("id", STATE, {**STATE, **facts}).changes
    switched = {"slot": "password2", "value": "v2", "expiry": "2026-09-01T00:00:00Z"}
    assert provider.diff("id", STATE, {**switched, **facts}).changes
    assert provider.update("id", STATE, {**switched, **facts}).outs == switched
    assert provider.create({**STATE, **facts}).outs == STATE


def test_unknowns_as_the_provider_host_hands_them_over(monkeypatch: pytest.MonkeyPatch) -> None:
    # pulumi/dynamic/__main__.py deserializes with keep_unknowns: Unknown objects, not the string.
    from pulumi.output import Unknown

    monkeypatch.setattr(rotation, "now", lambda: AT)
    news = {"slot": Unknown(), "value": Unknown(), "expiry": Unknown(),
            "presentSlots": ["password1"], "syncedSlots": ["password1"]}
    assert PasswordInUseProvider().diff("id", STATE, news).changes is False
    assert PasswordInUseProvider().diff("id", STATE, {**news, "presentSlots": ["password1", "password2"],
                                                        "syncedSlots": ["password1", "password2"]}).changes is True
