#!/usr/bin/env python3
"""fbuild bake of three services vs the same three built one after another
with `fbuild solve`, side by side on the test daemon.

Each service has its own context folder (a few MB of random files) and a
Dockerfile whose RUN steps take real time (a short sleep standing in for a
compiler, then writing a few MB). Every round passes a fresh NONCE build arg
so nothing comes from the cache; bake and the sequential solves alternate
(A B, then B A) and the figures are medians of --rounds rounds.

Usage: scripts/bench_bake.py [--rounds R] [--sleep S]
The test environment must be up (scripts/testenv.sh up); its env file is read.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from bench import load_env  # noqa: E402

SERVICES = ["api", "worker", "web"]


def make_project(root: Path, busybox: str, sleep: float) -> None:
    lines = ["services:"]
    for name in SERVICES:
        folder = root / name
        (folder / "src").mkdir(parents=True)
        for i in range(20):
            (folder / "src" / f"f{i}.bin").write_bytes(os.urandom(100_000))
        (folder / "Dockerfile").write_text(
            f"FROM {busybox}\n"
            "ARG NONCE\n"
            "COPY src /src\n"
            f"RUN echo $NONCE > /nonce && sleep {sleep}\n"
            "RUN dd if=/dev/urandom of=/blob bs=1M count=4 2>/dev/null && cat /src/* | md5sum > /sum\n"
        )
        lines += [f"  {name}:", "    build:", f"      context: ./{name}", "      args:", "        NONCE: ${NONCE}"]
    (root / "compose.yaml").write_text("\n".join(lines) + "\n")


def timed(cmd, cwd, env) -> float:
    start = time.monotonic()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sleep", type=float, default=2.0, help="seconds each service's RUN step sleeps")
    parser.add_argument("--fbuild", default=str(REPO / "target" / "release" / "fbuild"))
    args = parser.parse_args()
    load_env()
    env = dict(os.environ)
    env["BUILDKIT_HOST"] = env["FBUILD_TEST_ADDR"]
    env["BUILDKIT_PROGRESS"] = "quiet"
    fbuild = args.fbuild

    with tempfile.TemporaryDirectory(prefix="fbuild-bench-bake-") as tmp:
        root = Path(tmp)
        make_project(root, env["FBUILD_TEST_BUSYBOX"], args.sleep)

        def bake(nonce: str) -> float:
            return timed([fbuild, "bake"], root, {**env, "NONCE": nonce})

        def sequential(nonce: str) -> float:
            start = time.monotonic()
            for name in SERVICES:
                subprocess.run(
                    [fbuild, "solve", "--build-arg", f"NONCE={nonce}", str(root / name)],
                    env=env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            return time.monotonic() - start

        # One warm-up of each, so the base image and context uploads are in place.
        bake("warmup")
        sequential("warmup")
        bakes, solves = [], []
        for round_ in range(args.rounds):
            pair = [(bakes, bake), (solves, sequential)]
            if round_ % 2:
                pair.reverse()
            for results, run in pair:
                results.append(run(f"{time.time_ns()}-{round_}"))
        b, s = statistics.median(bakes), statistics.median(solves)
        print(f"three services, {args.rounds} rounds, nothing cached (fresh NONCE), RUN sleep {args.sleep}s each")
        print(f"  fbuild bake (one process, concurrent):  median {b:6.2f}s  runs {', '.join(f'{x:.2f}' for x in bakes)}")
        print(f"  3 x fbuild solve (one after another):   median {s:6.2f}s  runs {', '.join(f'{x:.2f}' for x in solves)}")
        print(f"  sequential / bake wall-time ratio: {s / b:.2f}x")


if __name__ == "__main__":
    main()
