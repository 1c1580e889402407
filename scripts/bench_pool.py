#!/usr/bin/env python3
"""Six independent bake targets on a builder of three nodes vs a builder of
one node, side by side in one run.

Three private buildkitd daemons are started (their own roots and sockets in a
temp folder), each with `--oci-max-parallelism 2`: a node that runs two steps
at a time, as a two-core runner does. On one machine the daemons share the
CPU, so a step's work is a sleep (a compiler waiting on its share of a real
node); without the limit one daemon would run all six at once and the test
would measure nothing but the machine. Builders `trio` (three nodes) and
`solo` (one node) are made with `fbuild builder create/append` in a temp
DOCKER_CONFIG. Every round passes a fresh NONCE so nothing is cached; the two
builders alternate (A B, then B A) and the figures are medians.

Usage: scripts/bench_pool.py [--rounds R] [--sleep S] [--fbuild PATH]
The test environment must be up (scripts/testenv.sh up) for buildkitd and
the busybox image; its env file is read. PATH defaults to a release build.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from bench import load_env, release_fbuild  # noqa: E402

TARGETS = [f"svc{i}" for i in range(6)]


def start_daemon(root: Path, name: str, buildkitd: str) -> tuple[subprocess.Popen, str]:
    folder = root / name
    folder.mkdir()
    addr = f"unix://{folder}/buildkitd.sock"
    log = open(folder / "buildkitd.log", "wb")
    proc = subprocess.Popen(
        [buildkitd, "--root", str(folder / "root"), "--addr", addr,
         "--otel-socket-path", str(folder / "otel.sock"),
         "--oci-worker=true", "--containerd-worker=false", "--oci-worker-net=host",
         "--oci-max-parallelism", "2"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    )
    return proc, addr


def wait_up(addr: str, buildctl: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"error: buildkitd at {addr} exited")
        if subprocess.run([buildctl, "--addr", addr, "debug", "workers"], capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    sys.exit(f"error: buildkitd at {addr} did not answer within 30 s")


def make_project(root: Path, busybox: str, sleep: float) -> None:
    hcl = ['variable "NONCE" {}', 'group "default" {', f"  targets = {str(TARGETS).replace(chr(39), chr(34))}", "}"]
    for name in TARGETS:
        hcl += [
            f'target "{name}" {{',
            '  context = "."',
            f'  dockerfile-inline = "FROM {busybox}\\nARG NONCE\\nRUN echo $NONCE {name} > /a && sleep {sleep}\\n'
            f'RUN sleep {sleep} && cat /a > /b\\n"',
            '  args = { NONCE = "${NONCE}" }',
            "}",
        ]
    (root / "docker-bake.hcl").write_text("\n".join(hcl) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sleep", type=float, default=2.0, help="seconds each of a target's two RUN steps sleeps")
    parser.add_argument("--fbuild", default=None, help="fbuild binary (default: a release build of this checkout)")
    args = parser.parse_args()
    load_env()
    fbuild = release_fbuild(args.fbuild)
    buildkitd, buildctl = os.environ["FBUILD_BUILDKITD"], os.environ["FBUILD_BUILDCTL"]

    with tempfile.TemporaryDirectory(prefix="fbuild-bench-pool-") as tmp:
        root = Path(tmp)
        daemons = [start_daemon(root, f"node{i}", buildkitd) for i in range(3)]
        try:
            for proc, addr in daemons:
                wait_up(addr, buildctl, proc)
            config = root / "docker-config"
            env = {k: v for k, v in os.environ.items() if k not in ("BUILDKIT_HOST", "BUILDX_BUILDER", "BUILDX_CONFIG")}
            env.update(DOCKER_CONFIG=str(config), BUILDKIT_PROGRESS="quiet")

            def fb(*argv: str, cwd=None, extra=None) -> None:
                subprocess.run([fbuild, *argv], cwd=cwd, env={**env, **(extra or {})}, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            for i, (_, addr) in enumerate(daemons):
                fb("builder", "create" if i == 0 else "append", "trio", addr, "--node", f"n{i}")
            # The one-node builder is the first node of the three (a builder of
            # one node is a plain connection to it).
            fb("builder", "create", "solo", daemons[0][1], "--node", "only")
            project = root / "project"
            project.mkdir()
            make_project(project, os.environ["FBUILD_TEST_BUSYBOX"], args.sleep)

            def bake(builder: str, nonce: str) -> float:
                start = time.monotonic()
                fb("--builder", builder, "bake", cwd=project, extra={"NONCE": nonce})
                return time.monotonic() - start

            # Warm-up: the base image on every node.
            bake("trio", "warmup")
            bake("solo", "warmup")
            for i in range(3):
                fb("--builder", "trio", "bake", cwd=project, extra={"NONCE": f"warm{i}"})
            trio, solo = [], []
            for round_ in range(args.rounds):
                pair = [(trio, "trio"), (solo, "solo")]
                if round_ % 2:
                    pair.reverse()
                for results, builder in pair:
                    results.append(bake(builder, f"{time.time_ns()}-{round_}"))
            t, s = statistics.median(trio), statistics.median(solo)
            print(f"six independent targets, two RUN steps of {args.sleep}s each, nodes run 2 steps at a time, "
                  f"{args.rounds} rounds, nothing cached (fresh NONCE)")
            print(f"  three nodes: median {t:6.2f}s  runs {', '.join(f'{x:.2f}' for x in trio)}")
            print(f"  one node:    median {s:6.2f}s  runs {', '.join(f'{x:.2f}' for x in solo)}")
            print(f"  three nodes / one node wall-time ratio: {t / s:.2f}x")
        finally:
            for proc, _ in daemons:
                proc.send_signal(signal.SIGTERM)
            for proc, _ in daemons:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
