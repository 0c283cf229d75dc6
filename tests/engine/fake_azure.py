"""``scripts/engine fake-azure``: the loopback ARM emulator (tests/arm_server.py) in the foreground,
for trying the azure-native stand-in (tests/engine/standin/azure_native.py) by hand.

The first line of stdout is the endpoint; then the environment to export in the shell that runs
``scripts/engine run``, one ``export`` line each, and a line per request ARM answers. Ctrl-C (or
SIGTERM) stops it and removes its temporary directory (the CA file is in it).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.arm_server import FAKE_BEARER, ArmServer


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/engine fake-azure", description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", action="append", metavar="NAME",
                        help="a parent registry getRegistry finds: Premium, data endpoint enabled "
                             "(repeatable; default: contosoedge, the example site's)")
    parser.add_argument("--location", default="westeurope", help="the registries' location (default: westeurope)")
    parser.add_argument("--sync", action="store_true",
                        help="answer PUT and DELETE at once instead of as long-running operations")
    parser.add_argument("--quiet", action="store_true", help="do not print a line per request")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    tmp = Path(tempfile.mkdtemp(prefix="fake-azure-"))

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        with ArmServer(tmp) as arm:
            for name in args.registry or ["contosoedge"]:
                arm.state.add_registry(name, location=args.location)
            if not args.sync:
                arm.state.put_mode = arm.state.delete_mode = "async"
                # A Retry-After on every operation answer: the stand-in polls each second instead of
                # the real provider's default 10 s (PUT) and 30 s (DELETE).
                arm.state.lro_retry_after = "1"
            print(arm.base_url, flush=True)
            print(f"export EDGE_REGISTRY_STANDIN_ARM={arm.base_url}")
            print(f"export EDGE_REGISTRY_ARM_TOKEN={FAKE_BEARER}")
            print(f"export REQUESTS_CA_BUNDLE={arm.ca_pem}")
            print(f"# and in the stack file: edge-registry:armEndpoint: {arm.base_url}", flush=True)
            print(f"# registries: {', '.join(sorted(arm.state.registries))}; Ctrl-C stops", file=sys.stderr, flush=True)
            seen = 0
            while True:
                time.sleep(0.2)
                requests = arm.requests
                if not args.quiet:
                    for request in requests[seen:]:
                        print(f"{request.method} {request.path}", file=sys.stderr, flush=True)
                seen = len(requests)
    except KeyboardInterrupt:
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
