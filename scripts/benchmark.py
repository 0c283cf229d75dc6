#!/usr/bin/env python3
"""Benchmark: the offline render of a site against the bare cost of importing the SDKs.

Prints, side by side from one run, wall time and peak memory of
  1. importing the SDK modules the program uses (the floor no program can go below),
  2. the offline render of the dev site,
  3. the render of a large site (500 repositories, 20 nodes, 10 pull-secret namespaces),
each in a fresh interpreter, the median of several rounds, and the ratios to the floor.
Targets: dev <= 1.5x the import floor, large <= 2x. Machines here are noisy: compare the
ratios, which come from one run, not absolute figures across runs.

    venv/bin/python scripts/benchmark.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

# The SDKs load their modules lazily on first attribute access, so the floor touches every
# class and function the program uses, not just the package names.
IMPORTS = (
    "import pulumi, pulumi.dynamic, pulumi_azure_native.containerregistry as acr, "
    "pulumi_kubernetes as k8s, pulumi_command.remote as remote, pydantic, yaml, croniter, isodate\n"
    "_ = (acr.ScopeMap, acr.Token, acr.ConnectedRegistry, acr.get_registry, acr.ParentPropertiesArgs, "
    "k8s.Provider, k8s.core.v1.Namespace, k8s.core.v1.Secret, k8s.core.v1.Service, "
    "k8s.core.v1.ServiceAccount, k8s.core.v1.ServiceAccountPatch, k8s.helm.v3.Release, remote.Command)"
)
MEASURE = """
import json, resource, sys, time
start = time.perf_counter()
{body}
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""
TARGETS = {"dev": 1.5, "large": 2.0}


def large_site(project_dir: Path) -> str:
    """Write Pulumi.large.yaml (500 repositories, 20 nodes, 10 namespaces) beside a Pulumi.yaml."""
    shutil.copy(ROOT / "Pulumi.yaml", project_dir / "Pulumi.yaml")
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    config["edge-registry:repositories"] = [f"fleet/service-{i:03d}" for i in range(500)]
    config["edge-registry:notifications"] = []
    config["edge-registry:pullSecretNamespaces"] = [f"apps-{i}" for i in range(10)]
    config["edge-registry:nodes"] = [
        {"host": f"192.0.2.{20 + i}", "role": "server" if i < 3 else "agent", "user": "ubuntu"} for i in range(20)
    ]
    (project_dir / "Pulumi.large.yaml").write_text(yaml.safe_dump({"config": config}))
    return "large"


def measure(body: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE.format(body=body)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        large_dir = Path(tmp)
        large_site(large_dir)
        cases = {
            "import floor": IMPORTS,
            "dev": f"{IMPORTS}\nfrom components.render import render_stack\nr = render_stack(stack='dev')\n"
                   "print(len(r.resources), file=sys.stderr)",
            "large": f"{IMPORTS}\nfrom components.render import render_stack\n"
                     f"r = render_stack({str(large_dir)!r}, 'large')\nprint(len(r.resources), file=sys.stderr)",
        }
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
        # Interleave the cases so drift in machine load hits all of them alike.
        for _ in range(args.rounds):
            for name, body in cases.items():
                samples[name].append(measure(body))
    floor_s = statistics.median(s["seconds"] for s in samples["import floor"])
    floor_m = statistics.median(s["peak_kib"] for s in samples["import floor"])
    print(f"{'case':<14}{'seconds':>10}{'x floor':>10}{'peak MiB':>11}{'x floor':>10}{'target':>9}  verdict")
    failed = False
    for name in cases:
        secs = statistics.median(s["seconds"] for s in samples[name])
        mem = statistics.median(s["peak_kib"] for s in samples[name])
        ratio_s, ratio_m = secs / floor_s, mem / floor_m
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            ok = ratio_s <= target and ratio_m <= target
            failed |= not ok
            verdict = "ok" if ok else "OVER TARGET"
        target_text = f"{target:.1f}x" if target else ""
        print(f"{name:<14}{secs:>10.2f}{ratio_s:>10.2f}{mem / 1024:>11.1f}{ratio_m:>10.2f}{target_text:>9}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
