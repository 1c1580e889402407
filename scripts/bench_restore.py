#!/usr/bin/env python3
"""Restoring only the cache mounts of the steps that will run (issue 19):
fbuild with a carried cache folder vs buildctl, on fresh daemons.

The project is shaped like a Python service on busybox (no internet needed):

  base   RUN with an apt-like cache mount (`id=apt`, --apt-mb MB of "packages"
         that the step writes once), installing --layer-mb MB into its layer
         — cached in every rebuild below
  deps   COPY requirements.txt; RUN with pip's cache mount: each requirement
         not in the mount is "downloaded" (sleep --download-s, then
         --req-kb KB written into the mount) and copied into the image
  app    COPY src/

A first runner (a fresh daemon of the script's own) builds it with fbuild and
exports a mode=max cache folder carrying both mounts and fbuild's build
record (`--cache-to type=local,dest=DIR,mode=max,mounts=true`). Checked, not
timed: on another fresh daemon a code-only change restores no cache mount,
and a requirements change restores only pip's.

Timed, side by side: the requirements change (one requirement added), each
client on a FRESH daemon, importing a fresh copy of that folder:
  fbuild    solve --cache-from type=local,src=DIR   (restores what will run)
  buildctl  build --import-cache type=local,src=DIR
in two settings: the pip mount brings nothing (the download costs no time:
acceptance ratio <= 1.0) and the step downloads slowly (--download-s per
requirement: acceptance ratio <= 0.5). Medians of --rounds alternating runs
(A B, then B A) of wall time, client CPU and peak RSS (wait4 rusage).

Usage: scripts/bench_restore.py [--rounds R] [--fbuild BIN]
The test environment must be up (scripts/testenv.sh up); its env file is read.
"""

import argparse
import os
import shutil
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
from bench_cache import Daemon  # noqa: E402

REQUIREMENTS = 10


def dockerfile(args, download_s: float) -> str:
    busybox = os.environ["FBUILD_TEST_BUSYBOX"]
    apt_bytes = args.apt_mb * 1_000_000
    layer_bytes = args.layer_mb * 1_000_000
    req_bytes = args.req_kb * 1000
    return (
        f"FROM {busybox} AS base\n"
        # apt: fills its mount once; the step's layer comes from the cache
        # folder in every rebuild, so its mount is never needed there.
        "RUN --mount=type=cache,id=apt,target=/var/cache/apt,sharing=locked \\\n"
        "    if [ ! -f /var/cache/apt/done ]; then \\\n"
        f"      head -c {apt_bytes} /dev/urandom > /var/cache/apt/packages.bin; touch /var/cache/apt/done; fi; \\\n"
        f"    head -c {layer_bytes} /dev/urandom > /os-packages\n"
        "WORKDIR /app\n"
        "FROM base AS deps\n"
        "COPY requirements.txt .\n"
        # pip: a requirement missing from the mount is "downloaded".
        "RUN --mount=type=cache,target=/root/.cache/pip \\\n"
        "    for r in $(cat requirements.txt); do \\\n"
        "      if [ ! -f /root/.cache/pip/$r ]; then \\\n"
        f"        sleep {download_s:.2f}; head -c {req_bytes} /dev/urandom > /root/.cache/pip/$r; fi; \\\n"
        "      cp /root/.cache/pip/$r /app/; done\n"
        "FROM deps\n"
        "COPY src/ /app/src/\n"
    )


def run_checked(cmd, env):
    """Runs cmd untimed; returns its stderr (fails the script on error)."""
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(map(str, cmd))} failed:\n{proc.stderr[-3000:]}")
    return proc.stderr


def run_measured(cmd, env):
    """bench.py's measurement (wall, client CPU, peak RSS via wait4), keeping
    stderr: each fbuild round says what it restored, so an outlier can be
    told from a restore that did not happen."""
    with tempfile.TemporaryFile() as log:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - start
        log.seek(0)
        stderr = log.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: {' '.join(map(str, cmd))} failed:\n{stderr[-3000:]}")
    return (wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024), stderr


def fresh_env(work: Path, name: str):
    """A fresh runner's environment: its own empty state folder, so the only
    build record it can find is the one the cache folder carries."""
    home = work / f"home-{name}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = dict(os.environ, HOME=str(home), XDG_STATE_HOME=str(home / "state"),
               FBUILD_CACHE_HELPER_IMAGE=os.environ["FBUILD_TEST_BUSYBOX"])
    env.pop("FBUILD_STATE_DIR", None)
    return env


def write_project(ctx: Path, args, download_s: float, requirements: int, code: str):
    (ctx / "src").mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile(args, download_s))
    (ctx / "requirements.txt").write_text("".join(f"pkg{i}\n" for i in range(requirements)))
    (ctx / "src" / "app.py").write_text(f"print({code!r})\n")


def seed(args, fbuild, work: Path, ctx: Path, download_s: float, label: str) -> Path:
    """The first runner: builds the project and exports the carried folder."""
    folder = work / f"carried-{label}"
    shutil.rmtree(folder, ignore_errors=True)
    write_project(ctx, args, download_s, REQUIREMENTS - 1, "v1")
    daemon = Daemon(work, f"seed-{label}")
    try:
        run_checked([fbuild, "--addr", daemon.addr, "solve", str(ctx), "--progress", "plain",
                     "--cache-to", f"type=local,dest={folder},mode=max,mounts=true"],
                    fresh_env(work, "seed"))
    finally:
        daemon.stop()
    return folder


def restore_note(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines()
             if "cache mounts from " in line or "cache mounts not restored" in line]
    return "; ".join(lines) or "(no restore note)"


def check_restores(args, fbuild, work: Path, ctx: Path, folder: Path):
    """The acceptance's first half, on fresh daemons: a code-only change
    restores no cache mount; a requirements change only pip's."""
    failures = []
    for change, requirements, code, expect_restored, expect_skipped in (
            ("code-only change", REQUIREMENTS - 1, "v2", [], ["apt", "/root/.cache/pip"]),
            ("requirements change", REQUIREMENTS, "v1", ["/root/.cache/pip"], ["apt"])):
        write_project(ctx, args, 0.0, requirements, code)
        copy = work / "check-folder"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(folder, copy, symlinks=True)
        daemon = Daemon(work, "check")
        try:
            stderr = run_checked([fbuild, "--addr", daemon.addr, "solve", str(ctx), "--progress", "plain",
                                  "--cache-from", f"type=local,src={copy}"], fresh_env(work, "check"))
        finally:
            daemon.stop()
        note = restore_note(stderr)
        # "cache mounts from DIR: restored A, B" and "cache mounts not restored: A, B (...)"
        # (the second line comes as a progress warning, behind a prefix)
        restored = [l.partition(": restored ")[2] for l in stderr.splitlines() if "cache mounts from " in l]
        restored = {m.strip() for line in restored for m in line.split(";")[0].split(",") if m.strip()}
        skipped = [l.partition("cache mounts not restored: ")[2].partition(" (")[0] for l in stderr.splitlines()
                   if "cache mounts not restored: " in l]
        skipped = {m.strip() for line in skipped for m in line.split(",") if m.strip()}
        ok = restored == set(expect_restored) and skipped == set(expect_skipped)
        print(f"  {change:<20} {'ok ' if ok else 'FAIL'} {note}")
        if not ok:
            failures.append(change)
    return failures


def timed_rounds(args, fbuild, work: Path, ctx: Path, folder: Path, download_s: float):
    buildctl = os.environ["FBUILD_BUILDCTL"]
    write_project(ctx, args, download_s, REQUIREMENTS, "v1")  # one requirement added

    def command(client, addr, copy):
        if client == "fbuild":
            return [fbuild, "--addr", addr, "solve", str(ctx), "--progress", "plain",
                    "--cache-from", f"type=local,src={copy}"]
        return [buildctl, "--addr", addr, "build", "--frontend", "dockerfile.v0", "--progress", "plain",
                "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                "--import-cache", f"type=local,src={copy}"]

    results = {"fbuild": [], "buildctl": []}
    notes = []
    for round_no in range(args.rounds):
        order = list(results) if round_no % 2 == 0 else list(reversed(results))
        for client in order:
            copy = work / "runner-folder"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(folder, copy, symlinks=True)
            daemon = Daemon(work, f"runner-{client}")
            try:
                os.sync()
                measured, stderr = run_measured(command(client, daemon.addr, copy), fresh_env(work, "runner"))
                results[client].append(measured)
                if client == "fbuild":
                    notes.append(restore_note(stderr))
            finally:
                daemon.stop()
        print(f"  round {round_no + 1}/{args.rounds}: " + ", ".join(
            f"{c} {results[c][-1][0]:.2f} s" for c in results), file=sys.stderr)
        print(f"    fbuild: {notes[-1]}", file=sys.stderr)
    return {c: tuple(statistics.median(r[i] for r in runs) for i in range(3)) for c, runs in results.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--apt-mb", type=int, default=100, help="size of the apt-like mount nobody needs")
    parser.add_argument("--layer-mb", type=int, default=0,
                        help="size of what the apt-like step installs into its layer (both clients fetch it)")
    parser.add_argument("--req-kb", type=int, default=500, help="size of one requirement in pip's mount")
    parser.add_argument("--download-s", type=float, default=1.0,
                        help="download time of one requirement in the slow setting")
    parser.add_argument("--fbuild", default=None, help="fbuild binary (default: cargo build --release)")
    args = parser.parse_args()
    load_env()
    fbuild = bench.release_fbuild(args.fbuild)
    work = Path(tempfile.mkdtemp(prefix="fbuild-bench-restore-"))
    settings = (("mount brings nothing", 0.0, 1.0), (f"slow download ({args.download_s:g} s/req)",
                                                     args.download_s, 0.5))
    table = []
    failed = []
    started = time.monotonic()
    try:
        ctx = work / "ctx"
        for label, download_s, limit in settings:
            print(f"{label}: seeding the carried folder on a first runner", file=sys.stderr)
            folder = seed(args, fbuild, work, ctx, download_s, label.split()[0])
            if download_s == 0.0:
                print("restores on fresh daemons (a record carried in the folder):")
                failed += check_restores(args, fbuild, work, ctx, folder)
            print(f"{label}: timing the requirements change", file=sys.stderr)
            table.append((label, limit, timed_rounds(args, fbuild, work, ctx, folder, download_s)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nrequirements change on a fresh daemon with a carried folder ({REQUIREMENTS} requirements, "
          f"{args.req_kb} KB each; apt mount {args.apt_mb} MB, apt layer {args.layer_mb} MB); median of {args.rounds} alternating rounds\n")
    header = f"{'setting':<28} {'client':<9} {'wall s':>8} {'cpu s':>8} {'rss MB':>8}"
    print(header)
    print("-" * len(header))
    for label, limit, med in table:
        for client in ("fbuild", "buildctl"):
            w, c, r = med[client]
            print(f"{label:<28} {client:<9} {w:>8.2f} {c:>8.2f} {r:>8.1f}")
        f, b = med["fbuild"], med["buildctl"]
        ratio = [f[i] / b[i] if b[i] else float("nan") for i in range(3)]
        verdict = "met" if ratio[0] <= limit else "NOT MET"
        print(f"{label:<28} {'ratio':<9} {ratio[0]:>7.2f}x {ratio[1]:>7.2f}x {ratio[2]:>7.2f}x"
              f"   wall target <= {limit:.1f}x: {verdict}")
        if ratio[0] > limit:
            failed.append(label)
    print(f"\n{time.monotonic() - started:.0f} s in all; load average now {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    if failed:
        sys.exit(f"not met: {', '.join(failed)}")


if __name__ == "__main__":
    main()
