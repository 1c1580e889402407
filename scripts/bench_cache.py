#!/usr/bin/env python3
"""Local cache folders: fbuild vs buildctl, side by side, on one daemon.

  export   a fully cached build that exports a mode=max cache of about --mb
           MB (random data, so compression cannot shrink it) to an empty folder
  import   the same build after `prune --all`, importing that folder, with
           an image output so every layer is read back through the session

Each figure is the median of --rounds alternating runs (A B, then B A).
Client CPU time and peak RSS are the client process's own (wait4 rusage).
fbuild runs as users run it, compiling the Dockerfile itself (--frontend
auto): its client CPU includes that compile (a few milliseconds), where
buildctl's frontend runs in the daemon, uncounted.

With --mounts, it also times the story local cache folders are for, on fresh
daemons: a build whose RUN step fills a cache mount (--mount-mb MB, standing
in for pip's downloads, fetched at --mount-mbps MB/s) exports its cache;
after a dependency change a fresh daemon rebuilds it importing layers only
(mounts=false), then layers plus cache mounts.

The benchmark runs its own buildkitd (a temporary --root), so pruning touches
no one else. Usage: scripts/bench_cache.py [--mb M] [--rounds R] [--mounts]
The test environment must be up (scripts/testenv.sh up); its env file is read.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import bench  # noqa: E402
from bench import load_env  # noqa: E402


def run_measured(cmd, env=None):
    """Runs cmd; returns (wall s, client CPU s, peak RSS MB): bench.py's
    measurement without its context-transfer figure."""
    return bench.run_measured(cmd, env)[:3]


class Daemon:
    """A buildkitd of the benchmark's own."""

    def __init__(self, work: Path, name: str):
        self.dir = work / name
        self.dir.mkdir(parents=True)
        self.addr = f"unix://{self.dir}/buildkitd.sock"
        config = Path(os.environ["FBUILD_TEST_ROOT"]) / "buildkitd.toml"
        self.log = open(self.dir / "buildkitd.log", "w")
        self.proc = subprocess.Popen(
            [os.environ["FBUILD_BUILDKITD"], "--root", str(self.dir / "root"), "--addr", self.addr,
             "--otel-socket-path", str(self.dir / "otel.sock"), "--config", str(config),
             "--oci-worker=true", "--containerd-worker=false", "--oci-worker-net=host"],
            stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while subprocess.run([os.environ["FBUILD_BUILDCTL"], "--addr", self.addr, "debug", "workers"],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                sys.exit(f"error: buildkitd did not start; see {self.dir / 'buildkitd.log'}")
            time.sleep(0.2)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def build_cmds(fbuild, buildctl, addr, ctx):
    # fbuild, like buildx, attaches a provenance attestation to an image by
    # default; buildctl does not: the same work on both sides without it.
    fb = [fbuild, "--addr", addr, "solve", str(ctx), "--progress", "plain", "--provenance=false"]
    bc = [buildctl, "--addr", addr, "build", "--frontend", "dockerfile.v0", "--progress", "plain",
          "--local", f"context={ctx}", "--local", f"dockerfile={ctx}"]
    return fb, bc


def cache_scenarios(args, fbuild, work):
    buildctl = os.environ["FBUILD_BUILDCTL"]
    daemon = Daemon(work, "daemon")
    try:
        ctx = work / "ctx"
        ctx.mkdir()
        steps = 4
        per_step = args.mb * 1_000_000 // steps
        lines = [f"FROM {os.environ['FBUILD_TEST_BUSYBOX']}"]
        lines += [f"RUN head -c {per_step} /dev/urandom > /blob{i}" for i in range(steps)]
        (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
        fb, bc = build_cmds(fbuild, buildctl, daemon.addr, ctx)
        run_measured(fb)  # fill the daemon's cache once

        def prune():
            subprocess.run([buildctl, "--addr", daemon.addr, "prune", "--all"], check=True, capture_output=True)

        clients = {
            "fbuild": lambda d: (fb + ["--cache-to", f"type=local,dest={d},mode=max"],
                                 fb + ["--cache-from", f"type=local,src={d}", "-o", "type=image,name=bench/fb"]),
            "buildctl": lambda d: (bc + ["--export-cache", f"type=local,dest={d},mode=max"],
                                   bc + ["--import-cache", f"type=local,src={d}", "--output",
                                         "type=image,name=bench/bc"]),
        }
        results = {(s, c): [] for s in ("export", "import") for c in clients}
        for round_no in range(args.rounds):
            order = list(clients) if round_no % 2 == 0 else list(reversed(clients))
            for client in order:
                # One path for both clients: buildctl's export measured up to
                # half again as much CPU into a folder path it alone had used
                # the round before (a path-keyed effect on the daemon's side,
                # not understood), so a folder per client flattered fbuild.
                folder = work / "cache"
                shutil.rmtree(folder, ignore_errors=True)
                export_cmd, import_cmd = clients[client](folder)
                os.sync()
                results[("export", client)].append(run_measured(export_cmd))
                size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
                prune()
                os.sync()
                results[("import", client)].append(run_measured(import_cmd))
                # The next export starts from a warm, fully cached daemon.
                run_measured(fb)
            print(f"round {round_no + 1}/{args.rounds} done (last folder {size / 1e6:.0f} MB)", file=sys.stderr)
        print(f"\nlocal cache, mode=max, about {args.mb} MB; median of {args.rounds} alternating rounds\n")
        header = f"{'scenario':<8} {'client':<9} {'wall s':>8} {'cpu s':>8} {'rss MB':>8}"
        print(header)
        print("-" * len(header))
        for scenario in ("export", "import"):
            med = {}
            for client in clients:
                runs = results[(scenario, client)]
                med[client] = tuple(statistics.median(r[i] for r in runs) for i in range(3))
                print(f"{scenario:<8} {client:<9} {med[client][0]:>8.2f} {med[client][1]:>8.2f} {med[client][2]:>8.1f}")
            f, b = med["fbuild"], med["buildctl"]
            ratio = [f[i] / b[i] if b[i] else float("nan") for i in range(3)]
            print(f"{scenario:<8} {'ratio':<9} {ratio[0]:>7.2f}x {ratio[1]:>7.2f}x {ratio[2]:>7.2f}x   (fbuild / buildctl)")
    finally:
        daemon.stop()


def mounts_scenario(args, fbuild, work):
    """Layers only versus layers plus cache mounts, each on a fresh daemon."""
    ctx = work / "seed"
    ctx.mkdir()
    # A stand-in for pip: each requirement not in the cache mount is
    # "downloaded" at --mount-mbps (sleep), then kept in the mount.
    per_req = args.mount_mb * 1_000_000 // 10
    seconds = per_req / (args.mount_mbps * 1_000_000)
    (ctx / "Dockerfile").write_text(
        f"FROM {os.environ['FBUILD_TEST_BUSYBOX']} AS base\nWORKDIR /app\n"
        "FROM base AS deps\nCOPY requirements.txt .\n"
        "RUN --mount=type=cache,target=/root/.cache/pip \\\n"
        "    for r in $(cat requirements.txt); do \\\n"
        "      if [ ! -f /root/.cache/pip/$r ]; then sleep " + f"{seconds:.2f}" + "; \\\n"
        f"        head -c {per_req} /dev/urandom > /root/.cache/pip/$r; fi; \\\n"
        "      cp /root/.cache/pip/$r /app/; done\n"
        "FROM base\nCOPY --from=deps /app /app\n")
    reqs = [f"pkg{i}" for i in range(10)]
    cache = work / "seed-cache"
    env = dict(os.environ, FBUILD_CACHE_HELPER_IMAGE=os.environ["FBUILD_TEST_BUSYBOX"])
    results = {"layers only": [], "layers + mounts": []}
    for round_no in range(args.rounds):
        (ctx / "requirements.txt").write_text("\n".join(reqs[:9]) + "\n")
        shutil.rmtree(cache, ignore_errors=True)
        runner = Daemon(work, f"runner1-{round_no}")
        fb = [fbuild, "--addr", runner.addr, "solve", str(ctx), "--progress", "plain"]
        run_measured(fb + ["--cache-to", f"type=local,dest={cache},mode=max,mounts=true"], env)
        runner.stop()
        (ctx / "requirements.txt").write_text("\n".join(reqs) + "\n")  # one dependency added
        order = list(results) if round_no % 2 == 0 else list(reversed(results))
        for kind in order:
            runner = Daemon(work, f"runner2-{round_no}-{kind.replace(' ', '')}")
            mounts = "true" if "mounts" in kind else "false"
            cmd = [fbuild, "--addr", runner.addr, "solve", str(ctx), "--progress", "plain",
                   "--cache-from", f"type=local,src={cache},mounts={mounts}"]
            results[kind].append(run_measured(cmd, env))
            runner.stop()
        print(f"mounts round {round_no + 1}/{args.rounds} done", file=sys.stderr)
    print(f"\nrequirements change on a fresh daemon: 10 requirements, {args.mount_mb} MB of downloads at "
          f"{args.mount_mbps} MB/s; median of {args.rounds} rounds\n")
    med = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
    for kind, wall in med.items():
        print(f"{kind:<16} {wall:>8.2f} s")
    print(f"{'ratio':<16} {med['layers + mounts'] / med['layers only']:>7.2f}x   (with mounts / layers only)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mounts", action="store_true", help="also time cache mounts on fresh daemons")
    parser.add_argument("--mount-mb", type=int, default=50)
    parser.add_argument("--mount-mbps", type=float, default=10.0)
    parser.add_argument("--fbuild", default=None, help="fbuild binary (default: cargo build --release)")
    args = parser.parse_args()
    load_env()
    fbuild = bench.release_fbuild(args.fbuild)
    work = Path(tempfile.mkdtemp(prefix="fbuild-bench-cache-"))
    try:
        cache_scenarios(args, fbuild, work)
        if args.mounts:
            mounts_scenario(args, fbuild, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
