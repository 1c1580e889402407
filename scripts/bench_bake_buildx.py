#!/usr/bin/env python3
"""fbuild bake vs buildx bake (v0.38.2) on a 4-service compose project,
side by side on the test daemon, and `bake --print` of the same file.

The project is a typical Python-service layout: one shared base stage built
from a YAML anchor (`x-build: &default-build`, merged with `<<:` into every
service), each service with its own context of a few MB and RUN steps that
take real time. Every round passes a fresh NONCE build arg so nothing comes
from the cache; the clients alternate (A B, then B A) and the figures are
medians of --rounds rounds: wall time, client CPU (user+sys of the client
process, from wait4) and its peak RSS.

Usage: scripts/bench_bake_buildx.py [--rounds R] [--sleep S] [--fbuild PATH]
Needs the test environment (scripts/testenv.sh up) and buildx
(scripts/buildx.sh builds it from Go's module cache).
"""

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from bench import load_env, release_fbuild  # noqa: E402

SERVICES = ["api", "worker", "web", "scheduler"]


def make_project(root: Path, busybox: str, sleep: float) -> None:
    lines = [
        "x-build: &default-build",
        "  dockerfile: Dockerfile",
        "  args: &args",
        f"    BASE: {busybox}",
        "    NONCE: ${NONCE}",
        "services:",
    ]
    for name in SERVICES:
        folder = root / name
        (folder / "src").mkdir(parents=True)
        for i in range(20):
            (folder / "src" / f"f{i}.bin").write_bytes(os.urandom(100_000))
        (folder / "Dockerfile").write_text(
            "ARG BASE\n"
            "FROM ${BASE} AS base\n"
            "ARG NONCE\n"
            f"RUN echo $NONCE > /nonce && sleep {sleep}\n"
            "FROM base\n"
            "COPY src /src\n"
            "RUN cat /src/* | md5sum > /sum\n"
        )
        lines += [
            f"  {name}:",
            "    build:",
            "      <<: *default-build",
            f"      context: ./{name}",
            "      args:",
            "        <<: *args",
            f"        SERVICE: {name}",
        ]
    (root / "compose.yaml").write_text("\n".join(lines) + "\n")


def run_measured(cmd, cwd, env):
    """(wall s, client CPU s, peak RSS MB) of one run; exits on failure."""
    with tempfile.TemporaryFile() as log:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        if os.waitstatus_to_exitcode(status) != 0:
            log.seek(0)
            sys.exit(f"error: {' '.join(cmd)} failed:\n{log.read().decode(errors='replace')[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sleep", type=float, default=1.0)
    parser.add_argument("--fbuild", default=None)
    args = parser.parse_args()
    load_env()
    fbuild = release_fbuild(args.fbuild)
    # `buildx.sh env` makes the `ref` builder on the test daemon and says
    # where its DOCKER_CONFIG is; `path` is the binary.
    line = subprocess.run(["bash", str(REPO / "scripts/buildx.sh"), "env"], capture_output=True, text=True, check=True)
    buildx_env = dict(os.environ)
    for part in shlex.split(line.stdout.strip().removeprefix("export ")):
        key, _, value = part.partition("=")
        if key in ("DOCKER_CONFIG", "BUILDX_BUILDER"):
            buildx_env[key] = value
    buildx = subprocess.run(["bash", str(REPO / "scripts/buildx.sh"), "path"], capture_output=True, text=True, check=True)
    buildx = buildx.stdout.strip()
    buildx_env["BUILDX_NO_DEFAULT_ATTESTATIONS"] = "1"
    env = dict(os.environ, BUILDKIT_PROGRESS="plain", BUILDX_NO_DEFAULT_ATTESTATIONS="1")

    clients = {
        "fbuild": ([fbuild, "bake"], [fbuild, "bake", "--print"], env),
        "buildx": ([buildx, "bake", "--progress", "plain"], [buildx, "bake", "--print"], buildx_env),
    }
    results = {name: {"build": [], "print": []} for name in clients}
    with tempfile.TemporaryDirectory(prefix="bench-bake-buildx-") as tmp:
        root = Path(tmp)
        make_project(root, os.environ["FBUILD_TEST_BUSYBOX"], args.sleep)
        # One warm-up each: base image pulled, both clients' first-run costs paid.
        for name, (build, _, client_env) in clients.items():
            run_measured(build, root, dict(client_env, NONCE="warm"))
        for round_ in range(args.rounds):
            order = list(clients) if round_ % 2 == 0 else list(reversed(clients))
            for name in order:
                build, print_cmd, client_env = clients[name]
                nonce = f"{round_}-{name}-{time.time_ns()}"
                results[name]["build"].append(run_measured(build, root, dict(client_env, NONCE=nonce)))
                results[name]["print"].append(run_measured(print_cmd, root, dict(client_env, NONCE=nonce)))

    def median(name, kind, index):
        return statistics.median(r[index] for r in results[name][kind])

    print(f"4-service compose bake, {args.rounds} rounds, medians (fbuild / buildx)")
    for kind in ("build", "print"):
        for index, label, unit in ((0, "wall", "s"), (1, "client CPU", "s"), (2, "peak RSS", "MB")):
            f, b = median("fbuild", kind, index), median("buildx", kind, index)
            print(f"  {kind:5} {label:10}  fbuild {f:8.3f}{unit}  buildx {b:8.3f}{unit}  ratio {f / b:5.2f}x")


if __name__ == "__main__":
    main()
