"""components/preview/benchmark.py (``python -m components benchmark``): the method (paired
ratios, median, interval, stopping rule), with fake timings."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
from typing import Any

import pytest

from components.preview import benchmark as bench
from tests.fixture_stacks import ROOT

CASES = {bench.FLOOR: "floor", "dev": "dev", "large": "large"}


def fake(cost: dict[str, float], drift: list[float], noise: float = 0.0, seed: int = 1) -> Any:
    """Each call costs cost[case] x the machine's current load; load drifts call by call."""
    load = itertools.cycle(drift)
    rng = random.Random(seed)
    calls: list[str] = []

    def run(body: str) -> dict[str, float]:
        calls.append(body)
        factor = next(load) * (1 + rng.uniform(-noise, noise))
        return {"seconds": cost[body] * factor, "peak_kib": cost[body] * 1000}

    run.calls = calls  # type: ignore[attr-defined]
    return run


def test_median_interval_is_order_statistics() -> None:
    low, mid, high = bench.median_interval(list(range(1, 101)))
    assert mid == 50.5 and low < mid < high
    assert (low, high) == (41, 60)


def test_paired_ratios_cancel_a_load_that_drifts_between_rounds() -> None:
    """The load triples between rounds; the per-round ratios stay exact, so 5 rounds suffice."""
    run = fake({"floor": 2.0, "dev": 2.6, "large": 3.4}, drift=[1, 1, 1, 3, 3, 3])
    ratios = bench.collect(CASES, precision=0.1, min_rounds=5, max_rounds=30, run=run, rng=random.Random(0))
    assert len(ratios["dev"]["seconds"]) == 5
    assert bench.median_interval(ratios["dev"]["seconds"])[1] == pytest.approx(1.3)
    assert bench.median_interval(ratios["large"]["peak_kib"])[1] == pytest.approx(1.7)


def test_each_round_measures_every_case_in_a_random_order() -> None:
    run = fake({"floor": 1.0, "dev": 1.2, "large": 1.5}, drift=[1])
    bench.collect(CASES, precision=0.1, min_rounds=8, max_rounds=8, run=run, rng=random.Random(3))
    rounds = [tuple(run.calls[i:i + 3]) for i in range(0, len(run.calls), 3)]
    assert len(rounds) == 8 and all(sorted(r) == ["dev", "floor", "large"] for r in rounds)
    assert len(set(rounds)) > 1


def test_noise_adds_rounds_until_the_interval_is_narrow() -> None:
    quiet = bench.collect(CASES, 0.1, 5, 60, run=fake({"floor": 1, "dev": 1.3, "large": 1.8}, [1], noise=0.01))
    noisy = bench.collect(CASES, 0.1, 5, 60, run=fake({"floor": 1, "dev": 1.3, "large": 1.8}, [1], noise=0.15))
    assert len(quiet["dev"]["seconds"]) == 5
    assert len(noisy["dev"]["seconds"]) > 5
    for ratios in (quiet, noisy):
        assert bench.median_interval(ratios["dev"]["seconds"])[1] == pytest.approx(1.3, rel=0.1)


def test_three_runs_agree_on_a_quiet_machine() -> None:
    figures = []
    for seed in (1, 2, 3):
        ratios = bench.collect(CASES, 0.1, 5, 30, run=fake({"floor": 1, "dev": 1.2, "large": 2.5}, [1], 0.03, seed))
        figures.append(bench.report(ratios, 0.1).splitlines()[2:])
        assert "within" in figures[-1][0] and "over" in figures[-1][1]
    readings = [[line.split()[-1] for line in run] for run in figures]
    assert readings[0] == readings[1] == readings[2]


def test_readings_are_within_over_or_undecided() -> None:
    assert bench.reading((1.1, 1.2, 1.3), 1.5) == "within"
    assert bench.reading((1.6, 1.7, 1.8), 1.5) == "over"
    assert bench.reading((1.4, 1.5, 1.6), 1.5) == "undecided"


def test_over_target_figures_still_exit_0(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    costs = {bench.IMPORTS: 1.0}

    def run(body: str) -> dict[str, float]:
        factor = costs.get(body, 3.0)  # both renders at 3x the floor: over both targets
        return {"seconds": factor, "peak_kib": factor * 1000}

    monkeypatch.setattr(bench, "measure", run)
    assert bench.main(["--max-rounds", "5"]) == 0
    out = capsys.readouterr().out
    assert "5 rounds" in out
    assert [line.split()[-1] for line in out.splitlines()[2:]] == ["over", "over"]


def test_the_floor_figures_are_printed_beside_the_ratios(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(body: str) -> dict[str, float]:
        factor = 1.0 if body == bench.IMPORTS else 1.2
        return {"seconds": 0.8 * factor, "peak_kib": 102400 * factor}

    monkeypatch.setattr(bench, "measure", run)
    assert bench.main(["--max-rounds", "5"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("5 rounds; import floor 0.80 s, 100 MiB; median of per-round ratios")


def test_the_floor_imports_no_module_a_render_does_not_load() -> None:
    """paramiko, cryptography and the Azure SDKs stay out of the floor: a render does not load them."""
    for module in ("paramiko", "cryptography", "azure.identity", "azure.mgmt", "azure.containerregistry", "aiohttp"):
        assert module not in bench.IMPORTS


def test_the_old_script_says_where_the_benchmark_went() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "scripts/benchmark.py moved: run python -m components benchmark\n"
    assert done.stdout.startswith("usage: python -m components benchmark")
