"""Benchmark: two versions of ``imggate serve`` and the bare Starlette app, warm, at saturation,
alternating in one run.

For a budget such as "the warm figures do not regress by more than 5%": a version
measured today against a figure taken another day on another machine says little (the
bare app's own rate moved between 13,600 and 25,100 requests/s from run to run here).
This starts both versions side by side against the same registry, signed image and rules
(those of ``admission_bench.py``), and the bare app, and runs ``wrk`` at saturation
against each in turn, the order reversed every other round, after a warm-up of each,
every server pinned to one core at nice -20 and ``wrk`` on the other
(``admission_bench.saturation_rounds``); each version's rate and server CPU per review
are compared with the bare run of the same round.

    python bench/webhook_versus.py OTHER_SRC [--rounds 11] [--duration 2]

``OTHER_SRC`` is the ``src/`` folder of the other version, e.g. of a worktree made with
``git worktree add --detach ../before 78d3e2c``; this tree's ``src/`` is the other side.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from admission_bench import saturation_rounds, wait_listening, webhook_world  # noqa: E402

from admission.serve_harness import ServeProcess, start_serve  # noqa: E402
from registry_harness import free_port, require_binaries, start_registry  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("other_src", type=Path, help="the other version's src/ folder")
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--duration", type=float, default=2, help="seconds per wrk run")
    args = ap.parse_args()
    require_binaries("docker-registry")
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk")
    if not (args.other_src / "imggate" / "__init__.py").exists():
        sys.exit(f"{args.other_src}: not an imggate src/ folder")
    work = Path(tempfile.mkdtemp(prefix="imggate-webhook-versus-"))
    reg = start_registry(work / "registry")
    servers: list[ServeProcess] = []
    bare = None
    try:
        world = webhook_world(work, reg, 1)
        serve_args = ["--rules", str(world.rules), "--insecure-ignore-tlog",
                      "--cache-ttl", "3600", "--tag-ttl", "3600"]
        trees = {"this tree": HERE.parent / "src", "other": args.other_src.resolve()}
        for name, src in trees.items():
            servers.append(start_serve(work / name.replace(" ", "-"), serve_args,
                                       tls=world.tls, env={"PYTHONPATH": str(src)},
                                       new_session=True))
        port = free_port()
        bare = subprocess.Popen([sys.executable, str(HERE / "bare_admission_app.py"),
                                 str(port), str(world.tls.cert), str(world.tls.key)],
                                start_new_session=True)
        wait_listening(port)
        for server in servers:
            with server.client() as c:
                answer = c.post("/validate", content=world.warm_body.read_bytes()).json()
                if not answer["response"]["allowed"]:
                    sys.exit("a version refused the signed image: not comparable")
        targets = [(f"{s.url}/validate", s.process.pid) for s in servers]
        targets.append((f"https://127.0.0.1:{port}/validate", bare.pid))
        runs, placement = saturation_rounds(targets, world.warm_body, world.script,
                                            rounds=args.rounds, seconds=args.duration)
        print(placement)
        bare_runs = runs[-1]
        print("\n| version | reviews/s vs bare, same round | server CPU per review vs bare |")
        print("|---|---|---|")
        for name, ours in zip(trees, runs, strict=False):
            rate = [o["rps"] / b["rps"] for o, b in zip(ours, bare_runs, strict=True)]
            cpu = [o["cpu_us"] / b["cpu_us"] for o, b in zip(ours, bare_runs, strict=True)]
            print(f"| {name} | {statistics.median(rate):.0%} ({min(rate):.0%}-{max(rate):.0%})"
                  f" | {statistics.median(cpu):.2f}x ({min(cpu):.2f}-{max(cpu):.2f}), "
                  f"{statistics.median(o['cpu_us'] for o in ours):.0f} µs |")
        print(f"| bare Starlette | {statistics.median(b['rps'] for b in bare_runs):,.0f}/s | "
              f"{statistics.median(b['cpu_us'] for b in bare_runs):.0f} µs |")
    finally:
        for server in servers:
            server.stop()
        if bare is not None and bare.poll() is None:
            bare.terminate()
            bare.wait(10)
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
