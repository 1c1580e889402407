#!/usr/bin/env python3
"""fbuild's native Dockerfile compiler vs the daemon's Dockerfile frontend,
side by side, on one daemon of the benchmark's own.

  corpus cold    every case and target of tests/dockerfiles/ (error cases
                 left out, and builds that fail on either side, named on
                 stderr), one after the other, on a daemon pruned first
  corpus cached  the same builds again, everything cached: what is left is
                 the frontend's work, the solve request and the export
  200 stages     a generated Dockerfile of --stages stages (each FROM the
                 previous one, a RUN and a COPY --from two stages back), built
                 cold and then cached; the cached build is the compile time
                 plus cache lookups. With the native frontend, `--print-llb`
                 (compile only, nothing built) is timed too when fbuild has it.

Both sides are `fbuild solve`, so the only difference is --frontend: `native`
(compiled in the client) against `dockerfile.v0` (the daemon's frontend);
--reference buildctl makes the daemon side `buildctl build --frontend
dockerfile.v0` instead. Every build exports `type=oci,rewrite-timestamp=true`
with SOURCE_DATE_EPOCH=0, as tests/native_frontend.rs does. Runs alternate
(A B, then B A) because timings on small machines drift run to run; each
figure is the median of --rounds runs, wall time and client CPU (wait4
rusage of the client process alone).

Usage: python3 scripts/bench_native.py [--rounds R] [--stages N]
       [--native NAME] [--reference fbuild|buildctl] [--cases a,b] [--fbuild PATH]
--native names the frontend of the A side (default native; dockerfile.v0
compares the harness with itself). The test environment must be up
(scripts/testenv.sh up); its env file is read (FBUILD_TESTENV_DIR).
"""

import argparse
import json
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

CORPUS = REPO / "tests" / "dockerfiles"


def corpus(only):
    """(name, dir, target, build args, secrets) of every build of the corpus."""
    git = os.environ.get("FBUILD_TEST_GIT", "")
    builds = []
    for case in sorted(CORPUS.iterdir()):
        spec_file = case / "case.json"
        if not spec_file.is_file() or (only and case.name not in only):
            continue
        spec = json.loads(spec_file.read_text())
        if spec.get("expect_error") or spec.get("opts") or spec.get("no_cache") or spec.get("images"):
            continue
        args = {k: v.replace("{git}", git) for k, v in spec.get("build_args", {}).items()}
        if any("{git}" in v for v in spec.get("build_args", {}).values()) and not git_repo_ready():
            print(f"skipping {case.name}: the corpus git repository is missing (run the tests once)",
                  file=sys.stderr)
            continue
        secrets = [f"id={s['id']},src={case / s['src']}" for s in spec.get("secrets", [])]
        # Named contexts ride along as (kind, value) pairs: `--build-context` for fbuild.
        busybox = os.environ.get("FBUILD_TEST_BUSYBOX", "")
        contexts = {k: v.replace("{busybox}", busybox) for k, v in spec.get("contexts", {}).items()}
        secrets = secrets + [("context", k, v) for k, v in contexts.items()]
        for target in spec["targets"]:
            builds.append((case.name, case, target, args, secrets))
    return builds


def git_repo_ready():
    root = os.environ.get("FBUILD_TEST_GIT_ROOT")
    return bool(root) and (Path(root) / "equiv-corpus-v1.git" / "HEAD").exists()


def command(side, tools, addr, ctx, target, args, secrets, dest):
    """The command line of one build; side is ('fbuild', frontend) or ('buildctl', None)."""
    kind, frontend = side
    all_args = {"SOURCE_DATE_EPOCH": "0", "BASE": os.environ["FBUILD_TEST_BUSYBOX"], **args}
    output = f"type=oci,dest={dest},rewrite-timestamp=true"
    if kind == "buildctl":
        cmd = [tools["buildctl"], "--addr", addr, "build", "--frontend", "dockerfile.v0",
               "--local", f"context={ctx}", "--local", f"dockerfile={ctx}", "--progress", "plain",
               "--output", output]
        for k, v in all_args.items():
            cmd += ["--opt", f"build-arg:{k}={v}"]
        if target:
            cmd += ["--opt", f"target={target}"]
    else:
        cmd = [tools["fbuild"], "--addr", addr, "solve", str(ctx), "--frontend", frontend, "--progress", "plain",
               "--provenance=false", "-o", output]
        for k, v in all_args.items():
            cmd += ["--build-arg", f"{k}={v}"]
        if target:
            cmd += ["--target", target]
    for secret in secrets:
        if isinstance(secret, tuple):
            _, name, value = secret
            if value.startswith("local:"):
                path = ctx / value[len("local:"):]
                cmd += (["--local", f"{name}={path}", "--opt", f"context:{name}=local:{name}"] if kind == "buildctl"
                        else ["--build-context", f"{name}={path}"])
            else:
                cmd += (["--opt", f"context:{name}={value}"] if kind == "buildctl"
                        else ["--build-context", f"{name}={value}"])
        else:
            cmd += ["--secret", secret]
    return cmd


def run_all(cmds):
    """Runs commands one after the other; (total wall s, total client CPU s)."""
    wall = cpu = 0.0
    for cmd in cmds:
        w, c, _rss = bench.run_measured(cmd)[:3]
        wall += w
        cpu += c
    return wall, cpu


def two_hundred_stages(ctx: Path, stages: int):
    """A Dockerfile of `stages` stages: a chain, each copying from two back."""
    lines = ["ARG BASE", "FROM ${BASE} AS s0", "RUN echo 0 > /s0"]
    for i in range(1, stages):
        lines.append(f"FROM s{i - 1} AS s{i}")
        lines.append(f"ARG N={i}")
        lines.append(f"RUN echo $N > /s{i}")
        if i >= 2:
            lines.append(f"COPY --from=s{i - 2} /s{i - 2} /copied-s{i - 2}")
        lines.append(f"ENV STAGE={i}")
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")


def has_print_llb(fbuild):
    out = subprocess.run([fbuild, "solve", "--help"], capture_output=True, text=True)
    return "--print-llb" in out.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stages", type=int, default=200)
    parser.add_argument("--native", default="native", help="frontend of the A side (default native)")
    parser.add_argument("--reference", choices=["fbuild", "buildctl"], default="fbuild",
                        help="the B side: fbuild --frontend dockerfile.v0 (default) or buildctl")
    parser.add_argument("--cases", default="", help="only these cases (comma-separated)")
    parser.add_argument("--fbuild", default=None, help="fbuild binary (default: cargo build --release)")
    args = parser.parse_args()
    load_env()
    fbuild = bench.release_fbuild(args.fbuild)
    tools = {"fbuild": fbuild, "buildctl": os.environ["FBUILD_BUILDCTL"]}
    sides = {
        args.native: ("fbuild", args.native),
        ("buildctl" if args.reference == "buildctl" else "dockerfile.v0"):
            ("buildctl", None) if args.reference == "buildctl" else ("fbuild", "dockerfile.v0"),
    }
    if len(sides) != 2:
        sys.exit("error: --native and the reference are the same thing")
    only = {c.strip() for c in args.cases.split(",") if c.strip()}
    builds = corpus(only)
    if not builds:
        sys.exit("error: no builds in the corpus")

    work = Path(tempfile.mkdtemp(prefix="fbuild-bench-native-"))
    daemon = Daemon(work, "daemon")
    try:
        big = work / "stages"
        two_hundred_stages(big, args.stages)
        out = work / "out.tar"

        def prune():
            subprocess.run([tools["buildctl"], "--addr", daemon.addr, "prune", "--all"], check=True,
                           capture_output=True)

        def corpus_cmds(side):
            return [command(side, tools, daemon.addr, ctx, target, a, s, out) for _, ctx, target, a, s in builds]

        big_cmd = {name: command(side, tools, daemon.addr, big, None, {}, [], out) for name, side in sides.items()}
        # A build that fails on either side (the native compiler does not
        # support something yet) is left out of both, and named.
        kept = []
        for build in builds:
            failed = [name for name, side in sides.items()
                      if subprocess.run(command(side, tools, daemon.addr, build[1], build[2], build[3], build[4], out),
                                        capture_output=True).returncode != 0]
            if failed:
                label = build[0] + (f"@{build[2]}" if build[2] else "")
                print(f"left out: {label} (fails with {', '.join(failed)})", file=sys.stderr)
            else:
                kept.append(build)
        builds[:] = kept
        if not builds:
            sys.exit("error: every corpus build fails on one side")
        scenarios = ("corpus cold", "corpus cached", f"{args.stages} stages cold", f"{args.stages} stages cached")
        results = {(s, n): [] for s in scenarios for n in sides}
        print(f"{len(builds)} corpus builds, {args.stages}-stage Dockerfile, {args.rounds} rounds; "
              f"daemon {daemon.addr}", file=sys.stderr)
        for round_no in range(args.rounds):
            order = list(sides) if round_no % 2 == 0 else list(reversed(sides))
            for name in order:
                side = sides[name]
                prune()
                os.sync()
                results[("corpus cold", name)].append(run_all(corpus_cmds(side)))
                results[("corpus cached", name)].append(run_all(corpus_cmds(side)))
                prune()
                os.sync()
                results[(f"{args.stages} stages cold", name)].append(run_all([big_cmd[name]]))
                results[(f"{args.stages} stages cached", name)].append(run_all([big_cmd[name]]))
            print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)

        a, b = list(sides)
        print(f"\n{len(builds)} corpus builds; median of {args.rounds} alternating rounds; "
              f"A = fbuild --frontend {a}, B = {'buildctl' if args.reference == 'buildctl' else 'fbuild'} "
              f"--frontend dockerfile.v0\n")
        header = f"{'scenario':<22} {'side':<14} {'wall s':>8} {'cpu s':>8}"
        print(header)
        print("-" * len(header))
        for scenario in scenarios:
            med = {}
            for name in sides:
                runs = results[(scenario, name)]
                med[name] = tuple(statistics.median(r[i] for r in runs) for i in range(2))
                print(f"{scenario:<22} {name:<14} {med[name][0]:>8.2f} {med[name][1]:>8.2f}")
            ratio = [med[a][i] / med[b][i] if med[b][i] else float("nan") for i in range(2)]
            print(f"{scenario:<22} {'ratio':<14} {ratio[0]:>7.2f}x {ratio[1]:>7.2f}x   (A / B)")

        if has_print_llb(fbuild):
            cmd = [fbuild, "--addr", daemon.addr, "solve", str(big), "--print-llb",
                   "--build-arg", f"BASE={os.environ['FBUILD_TEST_BUSYBOX']}"]
            times = []
            for _ in range(max(args.rounds, 3)):
                start = time.monotonic()
                done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                times.append(time.monotonic() - start)
                if done.returncode != 0:
                    print(f"\n--print-llb failed: {done.stderr.decode(errors='replace')[-500:]}")
                    break
            else:
                print(f"\n{args.stages}-stage compile only (fbuild --print-llb, native): "
                      f"median {statistics.median(times):.3f} s of {len(times)}")
        else:
            print("\n(this fbuild has no --print-llb: compile-only time not measured)")
        # The compiler alone, in process (no daemon, no base image to resolve):
        # the figure the 10 ms target is about.
        example = os.path.join(os.path.dirname(os.path.abspath(fbuild)), "examples", "compile_dockerfile")
        if os.path.exists(example):
            done = subprocess.run([example, "--stages", str(args.stages), "50"], capture_output=True, text=True)
            print(f"{args.stages}-stage compile in process (examples/compile_dockerfile): "
                  f"{(done.stdout or done.stderr).strip()}")
        else:
            print(f"(no {example}: `cargo build --release --example compile_dockerfile` for the in-process compile time)")
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
