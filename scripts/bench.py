#!/usr/bin/env python3
"""fbuild vs buildctl, side by side, against the same daemon.

Three scenarios on a generated context (default 20,000 files, 200 MB):
  full     the whole context sent from scratch (daemon cache pruned first)
  one      the same build after one file changed
  cached   a fully cached rebuild

Runs alternate between the clients (A B A B ...) because timings on small
machines drift run to run; each figure is the median of --rounds runs.
Client CPU time and peak RSS come from wait4()'s rusage of the client process
alone (the daemon's work is the same for both and not counted). "xfer" is the
daemon's own timing of the context transfer (the "[internal] load build
context" step, from rawjson progress): the part of the build a client can
speed up; the rest of the wall time is the daemon writing and copying files.

Usage: scripts/bench.py [--files N] [--mb M] [--rounds R] [--fbuild PATH]
The test environment must be up (scripts/testenv.sh up); its env file is read.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_env():
    env_file = Path(os.environ.get("FBUILD_TESTENV_DIR", REPO / ".testenv")) / "env"
    if not env_file.exists():
        sys.exit(f"error: {env_file} is missing: run scripts/testenv.sh up first")
    out = subprocess.run(["bash", "-c", f"source {env_file} && env -0"], capture_output=True, check=True)
    for item in out.stdout.split(b"\0"):
        if b"=" in item:
            key, _, value = item.partition(b"=")
            os.environ[key.decode()] = value.decode()


def release_fbuild(path=None):
    """`path`, or fbuild built in release mode from this checkout."""
    if path:
        return path
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "release" / "fbuild")


def make_context(root: Path, files: int, total_mb: int):
    """A tree of `files` files adding up to about `total_mb` MB, 100 files a folder."""
    rng = random.Random(42)
    size = max(1, total_mb * 1_000_000 // files)
    chunk = rng.randbytes(size * 2)
    for i in range(files):
        folder = root / f"d{i // 100:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        offset = i % size
        (folder / f"f{i:06d}.bin").write_bytes(chunk[offset:offset + size])
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /ctx\n")


def transfer_seconds(rawjson: str) -> float:
    """How long the daemon spent receiving the context ("load build context"),
    from rawjson progress; 0 when the step did not run (cached)."""
    from datetime import datetime

    def parse(ts):
        # RFC 3339 with up to nanoseconds; Python takes microseconds.
        head, _, frac = ts.rstrip("Z").partition(".")
        return datetime.fromisoformat(head).timestamp() + float("0." + (frac or "0"))

    started = completed = None
    for line in rawjson.splitlines():
        if not line.startswith("{"):
            continue
        for vertex in json.loads(line).get("vertexes") or []:
            if vertex.get("name") == "[internal] load build context":
                if vertex.get("started"):
                    started = parse(vertex["started"])
                if vertex.get("completed"):
                    completed = parse(vertex["completed"])
    return completed - started if started and completed else 0.0


def run_measured(cmd, env=None):
    """Runs cmd; returns (wall s, client CPU s, peak RSS MB, context transfer s)."""
    with tempfile.TemporaryFile() as log:
        start = time.monotonic()
        # stderr to a file, not a pipe: a full pipe would stall the client.
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        log.seek(0)
        stderr = log.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: {' '.join(map(str, cmd))} failed:\n{stderr[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, transfer_seconds(stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fbuild", default=None, help="fbuild binary (default: cargo build --release)")
    args = parser.parse_args()
    load_env()
    addr = os.environ["FBUILD_TEST_ADDR"]
    buildctl = os.environ["FBUILD_BUILDCTL"]
    fbuild = release_fbuild(args.fbuild)

    work = Path(tempfile.mkdtemp(prefix="fbuild-bench-"))
    ctx = work / "ctx"
    print(f"generating {args.files} files, {args.mb} MB in {ctx} ...", file=sys.stderr)
    make_context(ctx, args.files, args.mb)

    clients = {
        "fbuild": [fbuild, "--addr", addr, "solve", str(ctx), "--progress", "rawjson"],
        "buildctl": [buildctl, "--addr", addr, "build", "--frontend", "dockerfile.v0",
                     "--local", f"context={ctx}", "--local", f"dockerfile={ctx}", "--progress", "rawjson"],
    }

    def prune():
        subprocess.run([buildctl, "--addr", addr, "prune", "--all"], check=True, capture_output=True)

    def settle():
        """Same starting line for every run: the daemon's earlier writes on
        disk (not flushing during the next run), the context in the page cache."""
        os.sync()
        for path in ctx.rglob("*"):
            if path.is_file():
                path.read_bytes()

    results = {(scenario, client): [] for scenario in ("full", "one", "cached") for client in clients}
    changed = ctx / "d0000" / "f000000.bin"
    for round_no in range(args.rounds):
        order = list(clients) if round_no % 2 == 0 else list(reversed(clients))
        for client in order:
            cmd = clients[client]
            prune()
            settle()
            results[("full", client)].append(run_measured(cmd))
            changed.write_bytes(os.urandom(1000) + changed.read_bytes()[1000:])
            settle()
            results[("one", client)].append(run_measured(cmd))
            settle()
            results[("cached", client)].append(run_measured(cmd))
        print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)

    print(f"\ncontext: {args.files} files, {args.mb} MB; median of {args.rounds} alternating rounds; "
          f"daemon {addr}\n")
    header = f"{'scenario':<8} {'client':<9} {'wall s':>8} {'cpu s':>8} {'rss MB':>8} {'xfer s':>8}"
    print(header)
    print("-" * len(header))
    for scenario in ("full", "one", "cached"):
        med = {}
        for client in clients:
            runs = results[(scenario, client)]
            med[client] = tuple(statistics.median(r[i] for r in runs) for i in range(4))
            wall, cpu, rss, xfer = med[client]
            print(f"{scenario:<8} {client:<9} {wall:>8.2f} {cpu:>8.2f} {rss:>8.1f} {xfer:>8.2f}")
        f, b = med["fbuild"], med["buildctl"]
        ratio = lambda i: f[i] / b[i] if b[i] else float("nan")
        print(f"{scenario:<8} {'ratio':<9} {ratio(0):>7.2f}x {ratio(1):>7.2f}x {ratio(2):>7.2f}x {ratio(3):>7.2f}x"
              "   (fbuild / buildctl)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
