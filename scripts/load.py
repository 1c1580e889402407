#!/usr/bin/env python3
"""Issue 20's load runs against the test daemon, in one command:

1. Many builds on one connection: `fbuild bake` of a file with N targets
   (bake runs every target on one daemon connection), each target its own
   context and local output. Every output is checked; the process's RSS is
   sampled every 50 ms, and the run is repeated with N/4, N/2 and N targets
   so that peak memory against the number of builds shows whether it is flat.
2. Concurrent builds sharing one cache folder: ROUNDS rounds of C `fbuild
   solve` processes at once, each importing from and exporting to the same
   `--cache-to type=local` folder under its own tag (every export collects
   the folder). After each round: every output is checked, `fbuild cache ls`
   lists every tag, `fbuild cache gc` passes, and every blob in the folder
   matches its digest and every document reaches blobs that exist. Peak
   RSS of each build is reported, per round.

Usage: source the test env (`source .testenv/env`), then
  scripts/load.py [--fbuild PATH] [--targets 200] [--concurrent 8] [--rounds 5]
Exits 1 on any incorrect result. Needs only Python 3 and the test daemon.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def run_sampled(cmd, env, interval=0.05):
    """Runs cmd, sampling its RSS; returns (returncode, stderr, peak KiB, samples [(s, KiB)]).
    The peak is the kernel's (wait4's ru_maxrss), not the samples' largest."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = []
    stderr_chunks = []
    reader = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()))
    reader.start()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid != 0:
            break
        kib = rss_kib(proc.pid)
        if kib is not None:
            samples.append((time.monotonic() - start, kib))
        time.sleep(interval)
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    return proc.returncode, b"".join(stderr_chunks).decode(errors="replace"), usage.ru_maxrss, samples


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def bake_round(fbuild, env, work, n, token):
    """One bake of n targets on one connection; returns (seconds, peak KiB, samples)."""
    root = os.path.join(work, f"bake-{n}")
    lines = []
    for i in range(n):
        write(os.path.join(root, f"c{i}", "Dockerfile"), "FROM scratch\nCOPY . /\n")
        write(os.path.join(root, f"c{i}", "id.txt"), f"{token} target {i}\n")
        write(os.path.join(root, f"c{i}", "big.bin"), "x" * 100_000)
        lines.append(
            f'target "t{i}" {{\n  context = "c{i}"\n  output = ["type=local,dest=out/t{i}"]\n}}\n'
        )
    lines.append('group "default" { targets = [%s] }\n' % ", ".join(f'"t{i}"' for i in range(n)))
    write(os.path.join(root, "docker-bake.hcl"), "".join(lines))
    start = time.monotonic()
    code, stderr, peak, samples = run_in(root, [fbuild, "bake", "--progress", "quiet"], env)
    took = time.monotonic() - start
    if code != 0:
        fail(f"bake of {n} targets exited {code}:\n{stderr[-3000:]}")
    for i in range(n):
        got = open(os.path.join(root, "out", f"t{i}", "id.txt")).read()
        if got != f"{token} target {i}\n":
            fail(f"bake of {n}: target {i} wrote {got!r}")
        if os.path.getsize(os.path.join(root, "out", f"t{i}", "big.bin")) != 100_000:
            fail(f"bake of {n}: target {i}'s big.bin has the wrong size")
    shutil.rmtree(root)
    return took, peak, samples


def run_in(cwd, cmd, env):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return run_sampled(cmd, env)
    finally:
        os.chdir(old)


def check_folder(fbuild, env, cache, tags):
    """cache ls lists every tag, gc passes, and the folder is a valid layout."""
    ls = subprocess.run([fbuild, "cache", "ls", "--format", "json", cache], env=env, capture_output=True, text=True)
    if ls.returncode != 0:
        fail(f"cache ls: {ls.stderr}")
    for tag in tags:
        if f'"{tag}"' not in ls.stdout:
            fail(f"cache ls does not list tag {tag}:\n{ls.stdout}")
    gc = subprocess.run([fbuild, "cache", "gc", cache], env=env, capture_output=True, text=True)
    if gc.returncode != 0:
        fail(f"cache gc: {gc.stderr}")
    layout = json.load(open(os.path.join(cache, "oci-layout")))
    if layout.get("imageLayoutVersion") != "1.0.0":
        fail(f"oci-layout: {layout}")
    blobs = os.path.join(cache, "blobs", "sha256")
    names = os.listdir(blobs)
    for name in names:
        with open(os.path.join(blobs, name), "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != name:
                fail(f"blob {name} does not match its digest")
    pending = list(json.load(open(os.path.join(cache, "index.json")))["manifests"])
    reached = set()
    while pending:
        d = pending.pop()
        hexd = d["digest"].removeprefix("sha256:")
        path = os.path.join(blobs, hexd)
        if not os.path.exists(path):
            fail(f"index reaches missing blob {hexd}")
        if os.path.getsize(path) != d["size"]:
            fail(f"blob {hexd}: size {os.path.getsize(path)} != {d['size']}")
        if hexd in reached:
            continue
        reached.add(hexd)
        try:
            doc = json.load(open(path))
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(doc, dict) and "schemaVersion" in doc:
            if "config" in doc:
                pending.append(doc["config"])
            pending.extend(doc.get("layers", []) + doc.get("manifests", []))
    unreached = set(names) - reached
    # After gc, every blob is reached from a tag (the carried-mount lists are
    # reached through their own manifests).
    return len(names), len(unreached)


def cache_round(fbuild, env, work, cache, concurrent, round_no, token):
    procs = []
    results = [None] * concurrent
    def one(i):
        project = os.path.join(work, f"p{i}")
        out = os.path.join(work, f"out-{round_no}-{i}")
        cmd = [
            fbuild, "-q", "solve", project,
            "--cache-from", f"type=local,src={cache},tag=b{i}",
            "--cache-to", f"type=local,dest={cache},mode=max,tag=b{i}",
            "-o", f"type=local,dest={out}",
        ]
        start = time.monotonic()
        code, stderr, peak, _ = run_sampled(cmd, env, interval=0.02)
        results[i] = (code, stderr, peak, time.monotonic() - start, out)
    for i in range(concurrent):
        t = threading.Thread(target=one, args=(i,))
        t.start()
        procs.append(t)
    for t in procs:
        t.join()
    for i, (code, stderr, peak, took, out) in enumerate(results):
        if code != 0:
            fail(f"round {round_no} build {i} exited {code}:\n{stderr[-3000:]}")
        made = open(os.path.join(out, "made.txt")).read()
        if made != f"{token} build {i} round {round_no}\n" * 2:
            fail(f"round {round_no} build {i}: made.txt is {made!r}")
        shutil.rmtree(out)
    return [(r[2], r[3]) for r in results]


def main():
    default_bin = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "fbuild")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fbuild", default=default_bin)
    ap.add_argument("--targets", type=int, default=200)
    ap.add_argument("--concurrent", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    fbuild = os.path.abspath(args.fbuild)
    if not os.access(fbuild, os.X_OK):
        fail(f"{fbuild} is not an executable (build it, or pass --fbuild)")
    env = dict(os.environ)
    if "BUILDKIT_HOST" not in env or "FBUILD_TEST_BUSYBOX" not in env:
        fail("source the test env first (.testenv/env): BUILDKIT_HOST and FBUILD_TEST_BUSYBOX")
    busybox = env["FBUILD_TEST_BUSYBOX"]
    token = f"load-{os.getpid()}-{int(time.time())}"
    work = tempfile.mkdtemp(prefix="fbuild-load-")
    try:
        print(f"fbuild: {fbuild}")
        print(f"== {args.targets} builds on one connection (bake), peak RSS against the number of builds")
        sizes = sorted({max(1, args.targets // 4), max(1, args.targets // 2), args.targets})
        for n in sizes:
            took, peak, samples = bake_round(fbuild, env, work, n, token)
            # RSS over time, in tenths of the run.
            trace = []
            for k in range(1, 11):
                upto = [kib for s, kib in samples if s <= took * k / 10]
                trace.append(f"{max(upto, default=0) // 1024}")
            print(f"bake {n:4d} targets: {took:6.1f} s, peak RSS {peak / 1024:6.1f} MiB; "
                  f"running peak by tenths of the run (MiB): {' '.join(trace)}")
        print(f"== {args.rounds} rounds of {args.concurrent} concurrent builds on one cache folder")
        cache = os.path.join(work, "cache")
        tags = [f"b{i}" for i in range(args.concurrent)]
        for rnd in range(args.rounds):
            for i in range(args.concurrent):
                project = os.path.join(work, f"p{i}")
                write(os.path.join(project, "Dockerfile"),
                      f"FROM {busybox}\nCOPY id.txt /id.txt\nRUN cat /id.txt /id.txt > /made.txt\n"
                      f"RUN head -c 1000000 /dev/urandom > /noise.bin\n")
                write(os.path.join(project, "id.txt"), f"{token} build {i} round {rnd}\n")
            start = time.monotonic()
            per_build = cache_round(fbuild, env, work, cache, args.concurrent, rnd, token)
            took = time.monotonic() - start
            blobs, unreached = check_folder(fbuild, env, cache, tags)
            size = sum(os.path.getsize(os.path.join(cache, "blobs", "sha256", b))
                       for b in os.listdir(os.path.join(cache, "blobs", "sha256")))
            peaks = [p / 1024 for p, _ in per_build]
            print(f"round {rnd}: {took:5.1f} s; peak RSS per build (MiB) min {min(peaks):.1f} "
                  f"max {max(peaks):.1f} mean {sum(peaks) / len(peaks):.1f}; folder valid: "
                  f"{blobs} blobs, {size / 1e6:.1f} MB, {unreached} not reached from a tag")
        print("all correct")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
