"""Benchmark: the offline render of a site against the bare cost of importing the SDKs.

Measures, each in a fresh interpreter, wall time and peak memory of
  1. importing the SDK modules the program uses (the floor no program can go below),
  2. the offline render of the example site (the test fixture tests/stacks/Pulumi.dev.yaml),
  3. the render of a large site (500 repositories, 20 nodes, 10 pull-secret namespaces).

Method (a shared machine's load drifts by more than the effect being measured):
  * one round measures the three back to back, in a random order, and keeps the ratios
    render / floor of that round: drift between rounds cancels out of each ratio;
  * the figure is the median of those ratios, with a distribution-free 95% interval;
  * rounds are added until every interval is narrower than --precision of its median (at least
    --min-rounds, at most --max-rounds), so two runs on a quiet machine print the same figures
    to within that precision.
It prints figures and a reading against the targets (dev <= 1.5x the floor, large <= 2x):
"within" or "over" when the whole interval is on one side, "undecided" when the target lies
inside it. The exit status is 0 whatever the figures: noise must not fail a build. The floor's
own median time and peak memory are printed beside the ratios.

The floor is what a render cannot do without, imported as a render uses it: the Pulumi SDK
(``pulumi``, ``pulumi.dynamic``), every class and function of pulumi-azure-native,
pulumi-kubernetes and pulumi-command the program touches (the SDKs load their modules lazily on
first attribute access, so the floor touches each one, not just the package names; the Helm
``Release`` brings in pulumi-kubernetes' own YAML module, and with it ``requests``), the
azure-native provider's config module (the config check reads its keys), and pydantic (which
loads lazily too: the floor touches what the config model uses), PyYAML, croniter and isodate
(the config check). Not in it: paramiko, cryptography and the Azure SDKs
(azure-identity, azure-mgmt-containerregistry, azure-containerregistry). A render does not load
them: its fakes stand in for the program's SSH, ARM and catalog readers and issue no certificate,
and ``components/`` imports them only where a real read or issuance needs them (``--read-nodes``
loads paramiko). Were they in the floor, a render that loaded them needlessly would look cheap.

    python -m components benchmark [--precision 0.1] [--min-rounds 5] [--max-rounds 30] [--no-progress]

Progress goes to stderr, a round at a time (a bar on a terminal, a line per round elsewhere);
the figures go to stdout.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from components.command_line import CommandParser, number, whole_number
from components.progress import Progress

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "stacks"
PROG = "python -m components benchmark"

# The import floor (see the module docstring): what a render needs, touched as the program does.
IMPORTS = (
    "import pulumi, pulumi.dynamic, pulumi_azure_native.containerregistry as acr, pulumi_azure_native.config.vars, "
    "pulumi_kubernetes as k8s, pulumi_command.remote as remote, pydantic, yaml, croniter, isodate\n"
    "_ = (acr.ScopeMap, acr.Token, acr.ConnectedRegistry, acr.get_registry, acr.ParentPropertiesArgs, "
    "acr.SyncPropertiesArgs, acr.LoggingPropertiesArgs, acr.TokenStatus, "
    "k8s.Provider, k8s.core.v1.Namespace, k8s.core.v1.Secret, k8s.core.v1.Service, k8s.core.v1.ServiceAccount, "
    "k8s.core.v1.ServiceAccountPatch, k8s.core.v1.LocalObjectReferencePatchArgs, k8s.meta.v1.ObjectMetaPatchArgs, "
    "k8s.helm.v3.Release, remote.Command, remote.ConnectionArgs, "
    "pydantic.BaseModel, pydantic.BeforeValidator, pydantic.ConfigDict, pydantic.Field, pydantic.SecretStr, "
    "pydantic.ValidationError, pydantic.field_validator, pydantic.model_validator)"
)
MEASURE = """
import json, resource, sys, time
start = time.perf_counter()
{body}
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""
FLOOR = "import floor"
TARGETS = {"dev": 1.5, "large": 2.0}
METRICS = ("seconds", "peak_kib")

Sample = dict[str, float]

#: A pinned host key for the large site's nodes (every node needs one; the render never dials them).
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGYWdm7ptFCJ0sJYaY+nclh895DF084UCY8JeX9+wUDc"


def large_site(project_dir: Path) -> str:
    """Write Pulumi.large.yaml (500 repositories, 20 nodes, 10 namespaces) beside a Pulumi.yaml."""
    shutil.copy(ROOT / "Pulumi.yaml", project_dir / "Pulumi.yaml")
    config = yaml.safe_load((FIXTURES / "Pulumi.dev.yaml").read_text())["config"]
    config["edge-registry:repositories"] = [f"fleet/service-{i:03d}" for i in range(500)]
    config["edge-registry:notifications"] = []
    config["edge-registry:pullSecretNamespaces"] = [f"apps-{i}" for i in range(10)]
    config["edge-registry:nodes"] = [
        {"host": f"192.0.2.{20 + i}", "role": "server" if i < 3 else "agent", "user": "ubuntu", "hostKey": HOST_KEY}
        for i in range(20)
    ]
    (project_dir / "Pulumi.large.yaml").write_text(yaml.safe_dump({"config": config}))
    return "large"


def measure(body: str) -> Sample:
    """Wall time and peak RSS of ``body`` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", MEASURE.format(body=body)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_interval(values: Sequence[float], z: float = 1.96) -> tuple[float, float, float]:
    """(low, median, high): the median and its distribution-free ~95% interval (order statistics)."""
    ordered = sorted(values)
    n = len(ordered)
    half = z * math.sqrt(n) / 2
    low = max(0, math.floor(n / 2 - half))
    high = min(n - 1, math.ceil(n / 2 + half) - 1)
    return ordered[low], statistics.median(ordered), ordered[high]


def narrow_enough(values: Sequence[float], precision: float) -> bool:
    low, mid, high = median_interval(values)
    return (high - low) <= precision * mid


def reading(interval: tuple[float, float, float], target: float) -> str:
    low, _, high = interval
    if high <= target:
        return "within"
    if low > target:
        return "over"
    return "undecided"


def collect(
    cases: dict[str, str], precision: float, min_rounds: int, max_rounds: int,
    run: Callable[[str], Sample] | None = None, rng: random.Random | None = None,
    on_round: Callable[[int, dict[str, dict[str, list[float]]]], None] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Ratios to the floor per case and metric, one per round, until every interval is narrow.
    ``on_round`` is called after each round with its number and the ratios so far (progress)."""
    run = run or measure
    rng = rng or random.Random()
    ratios: dict[str, dict[str, list[float]]] = {name: {m: [] for m in METRICS} for name in cases if name != FLOOR}
    for done in range(1, max_rounds + 1):
        order = list(cases)
        rng.shuffle(order)
        round_samples = {name: run(cases[name]) for name in order}
        floor = round_samples[FLOOR]
        for name in ratios:
            for metric in METRICS:
                ratios[name][metric].append(round_samples[name][metric] / floor[metric])
        if on_round is not None:
            on_round(done, ratios)
        if done >= min_rounds and all(narrow_enough(v, precision) for r in ratios.values() for v in r.values()):
            break
    return ratios


def report(
    ratios: dict[str, dict[str, list[float]]], precision: float, floor: Sequence[Sample] = ()
) -> str:
    """The figures: a header, then one line per case ending in its reading. With ``floor`` (the
    floor's samples), the header gives the floor's own median time and peak memory too."""
    rounds = len(next(iter(ratios.values()))["seconds"])
    floor_figures = (
        f"; import floor {statistics.median(s['seconds'] for s in floor):.2f} s, "
        f"{statistics.median(s['peak_kib'] for s in floor) / 1024:.0f} MiB"
        if floor else ""
    )
    lines = [
        f"{rounds} rounds{floor_figures}; median of per-round ratios to the import floor, [95% interval]"
        f"{'' if all(narrow_enough(v, precision) for r in ratios.values() for v in r.values()) else ' (max rounds reached: intervals wider than asked)'}",
        f"{'case':<8}{'time x floor':>26}{'memory x floor':>26}{'target':>8}  reading",
    ]
    for name, metrics in ratios.items():
        time_i, mem_i = median_interval(metrics["seconds"]), median_interval(metrics["peak_kib"])
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            readings = {reading(time_i, target), reading(mem_i, target)}
            verdict = "over" if "over" in readings else "undecided" if "undecided" in readings else "within"
        lines.append(
            f"{name:<8}{time_i[1]:>10.2f} [{time_i[0]:.2f}-{time_i[2]:.2f}]".ljust(34)
            + f"{mem_i[1]:>10.2f} [{mem_i[0]:.2f}-{mem_i[2]:.2f}]".ljust(26)
            + f"{(f'{target:.1f}x' if target else ''):>8}  {verdict}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    parser = CommandParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", type=number(minimum=0.001, maximum=1), default=0.10,
                        help="interval width / median to stop at (default 0.1)")
    parser.add_argument("--min-rounds", type=whole_number(minimum=1), default=5, metavar="N",
                        help="rounds to measure at least (default 5)")
    parser.add_argument("--max-rounds", type=whole_number(minimum=1), default=30, metavar="N",
                        help="rounds to measure at most (default 30)")
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        large_dir = Path(tmp)
        large_site(large_dir)
        render = f"{IMPORTS}\nfrom components.preview.render import render_stack\n"
        cases = {
            FLOOR: IMPORTS,
            "dev": f"{render}r = render_stack(stack='dev', stack_dir={str(FIXTURES)!r})\n",
            "large": f"{render}r = render_stack({str(large_dir)!r}, 'large')\n",
        }
        floor: list[Sample] = []

        def run(body: str) -> Sample:
            sample = measure(body)
            if body == cases[FLOOR]:
                floor.append(sample)
            return sample

        if args.min_rounds > args.max_rounds:
            parser.error(f"--min-rounds {args.min_rounds} is more than --max-rounds {args.max_rounds}")
        # Each round starts three interpreters: a minute or two in all, so say how far it is.
        with Progress("measuring rounds", total=args.max_rounds, prefix="benchmark",
                      enabled=not args.no_progress) as progress:

            def shown(done: int, so_far: dict[str, dict[str, list[float]]]) -> None:
                medians = ", ".join(f"{name} {statistics.median(m['seconds']):.2f}x" for name, m in so_far.items())
                progress.step(f"round {done} (at least {args.min_rounds}): time x floor {medians}")

            ratios = collect(cases, args.precision, args.min_rounds, args.max_rounds, run=run, on_round=shown)
    print(report(ratios, args.precision, floor))
    return 0


if __name__ == "__main__":
    sys.exit(main())
