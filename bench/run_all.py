"""Every headline figure beside its peer or floor, measured in one run: one table.

    python3 bench/run_all.py [--quick]
                             [--only startup,check,rtt,convert,resolve,audit,webhook]
                             [--rounds N]

Sets up what the figures need on loopback, in a temporary directory it removes
at the end: a Distribution registry (``docker-registry``), images built with
umoci and pushed with skopeo, cosign-format key signatures (the tests'
signer), Trivy reports built from the real entries in ``tests/fixtures/trivy``,
TLS for the webhook. Then each figure runs as alternating rounds (ABBA: the
two sides swap order every round, so a drift in what the shared machine
gives falls on both alike) of imggate and its peer:

- start-up: ``imggate --help`` against ``python -c 'import typer'`` (what drawing
  the command list with typer would cost: imggate prints it stored, without typer,
  ``imggate._help_text``) and the interpreter's own start (``python -c pass``), and
  ``check`` of the bundled example against ``python -c`` importing what that command
  needs (the import floor);
- ``check`` of one signed image with a 10,000-finding report, against
  ``imggate resolve`` of the same image: the report whose findings repeat 85
  vulnerabilities, and one where every finding is a vulnerability of its own;
- the round trips to a registry 50 ms away that ``check`` of one key-signed image waits
  for, against those of ``resolve``: each run through a TCP proxy that adds the round
  trip and through the same proxy adding none (start-up and CPU cancel out);
- ``convert`` of 5,000 and 50,000 findings (in process), against the stdlib's
  ``json.loads`` + ``json.dumps`` of the same file, and its growth 5k -> 50k: both
  report variants, as for ``check``;
- ``resolve`` of 200 images, against ``curl --parallel`` over the same GETs
  and a ``skopeo inspect`` loop;
- ``audit`` of 1,000 tags, against ``curl --parallel`` over the same GETs and
  a ``skopeo list-tags`` + ``inspect`` loop;
- the webhook (``imggate serve``, uvicorn + uvloop + httptools + TLS) at
  saturation with ``wrk``, against a bare Starlette app on the same stack
  (``bare_admission_app.py``): requests/s and server CPU per review, in 11 rounds
  of 2 s after a 2 s warm-up of each, every server pinned to one core at nice
  -20 and ``wrk`` (one thread) on the other (``admission_bench.saturation_rounds``
  says why); cold reviews of distinct signed digests.

It prints one Markdown table: the figure, imggate's median (range) over the
rounds, the peer's, the ratio (median and range of each round's ratio to the
peer run beside it), the target, and the 1-minute load average before and
after the figure. imggate runs from this tree (``src/`` first on
``PYTHONPATH``), with its bytecode compiled first (``compileall``: an
editable install without bytecode pays ~15% more at start-up).

``--quick`` uses small sizes and one round to keep the script working (CI runs
it once): its figures mean nothing and no target is judged. The exit status is
non-zero only when a figure could not be measured (a failure, a wrong answer).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = ROOT / "src"
# This tree's imggate, here and in every child process (not whichever one is installed).
sys.path[:0] = [str(SRC), str(ROOT / "tests"), str(HERE)]
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)

from registry_figures import alternate  # noqa: E402

IMGGATE = [sys.executable, "-m", "imggate"]
FIGURES = ("startup", "check", "rtt", "convert", "resolve", "audit", "webhook")


@dataclass(frozen=True)
class Sizes:
    """How big each figure's workload is, and how many alternating rounds it gets."""

    rounds: int
    startup_rounds: int
    check_findings: int
    convert_small: int
    convert_large: int
    cold_digests: int
    wrk_seconds: int
    #: The webhook's saturation rounds (short ones, many: admission_bench.saturation_rounds).
    wrk_rounds: int
    wrk_warmup: int


FULL = Sizes(rounds=5, startup_rounds=11, check_findings=10_000,
             convert_small=5_000, convert_large=50_000, cold_digests=100, wrk_seconds=2,
             wrk_rounds=11, wrk_warmup=2)
QUICK = Sizes(rounds=1, startup_rounds=2, check_findings=500,
              convert_small=500, convert_large=5_000, cold_digests=4, wrk_seconds=1,
              wrk_rounds=1, wrk_warmup=0)


# ----------------------------------------------------------------------------- the table


@dataclass
class Row:
    """One line of the table.

    ``ratios`` holds one value per round (imggate's run against the peer run beside
    it); ``limit`` is the target for their median, or for imggate's own median when
    ``absolute`` (start-up's "--help under 0.15 s").
    """

    figure: str
    unit: str
    ours: list[float]
    peer_label: str = ""
    peer: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    ratio_unit: str = "x"
    target: str = ""
    met: bool | None = None
    load: tuple[float, float] = (0.0, 0.0)


def _num(value: float, unit: str) -> str:
    """``value`` as ``_fmt`` writes it, without the unit (for the range after a median)."""
    text = _fmt(value, unit)
    for suffix in (" s", " ms", " µs", "/s", "x", " round trips"):
        if unit != "%" and text.endswith(suffix):
            return text[: -len(suffix)]
    return text


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "us":
        return f"{value:.0f} µs"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "%":
        return f"{value:.0%}"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "RT":
        return f"{value:.1f} round trips"
    return f"{value:g}{unit}"


def spread(values: Sequence[float], unit: str) -> str:
    """``median (min-max)``, or the single value."""
    if not values:
        return ""
    med = _fmt(statistics.median(values), unit)
    if len(values) == 1:
        return med
    return f"{med} ({_num(min(values), unit)}-{_num(max(values), unit)})"


def print_table(rows: list[Row], failures: list[str], sizes: Sizes, quick: bool,
                started: datetime, wall: float) -> None:
    """The one table, Markdown, with what was run and where."""
    mode = "--quick (sizes too small to mean anything; no target judged)" if quick else "full"
    print()
    print(f"`python3 bench/run_all.py{' --quick' if quick else ''}`: "
          f"{started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, {mode}; {sizes.rounds} alternating rounds "
          f"({sizes.startup_rounds} for start-up; {sizes.wrk_rounds} of {sizes.wrk_seconds} s "
          f"for the webhook's saturation; resolve and audit: their bench modules' "
          f"own); imggate is `python -m imggate` from this tree's src/, its bytecode compiled "
          f"first (compileall); load: the 1-minute load average; {wall:.0f} s in all")
    print()
    print("| figure | imggate: median (range) | peer, same run: median (range) | ratio | "
          "target | load before → after |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        peer = f"{r.peer_label}: {spread(r.peer, r.unit)}" if r.peer else r.peer_label
        verdict = ""
        if r.target and not quick and r.met is not None:
            verdict = " met" if r.met else " **missed**"
        print(f"| {r.figure} | {spread(r.ours, r.unit)} | {peer} | "
              f"{spread(r.ratios, r.ratio_unit)} | {r.target}{verdict} | "
              f"{r.load[0]:.2f} → {r.load[1]:.2f} |")
    for f in failures:
        print(f"\nNOT MEASURED: {f}")


# ------------------------------------------------------------------------------ helpers


def load1() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def note(text: str) -> None:
    """Progress, on stderr (the table alone goes to stdout)."""
    sys.stderr.write(f"[{datetime.now(UTC):%H:%M:%S} load {load1():.2f}] {text}\n")
    sys.stderr.flush()


def run_timed(cmd: Sequence[str], *, ok: tuple[int, ...] = (0,), cwd: Path | None = None,
              stdin: str | None = None) -> tuple[float, str]:
    """Wall seconds of one run of ``cmd`` and its standard output; an unexpected exit
    status fails the figure (a benchmark of a broken run measures nothing)."""
    started = time.perf_counter()
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False, cwd=cwd,
                          input=stdin)
    elapsed = time.perf_counter() - started
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {proc.returncode}:\n"
                           f"{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def ratios(ours: Sequence[float], peer: Sequence[float]) -> list[float]:
    """Each round's imggate sample over the peer sample of the same round."""
    return [a / b for a, b in zip(ours, peer, strict=True)]


def require(*tools: str) -> None:
    """Fail the figure, saying what to install, when a tool is missing."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)} (see .ci/run for the packages)")


# ------------------------------------------------------------------------------ set-up


@dataclass
class Bench:
    """What the figures share: sizes, a scratch directory, the registry (started once)."""

    sizes: Sizes
    work: Path
    quick: bool
    _registry: object | None = None
    _signed: tuple[list[str], Path] | None = None

    @property
    def registry(self):  # type: ignore[no-untyped-def]
        """The loopback registry, anonymous, started on first use."""
        if self._registry is None:
            from registry_harness import require_binaries, start_registry

            require_binaries("docker-registry", "skopeo", "umoci")
            self._registry = start_registry(self.work / "registry", auth="none")
        return self._registry

    def stop(self) -> None:
        """Stop the registry, if it was started."""
        if self._registry is not None:
            self._registry.stop()  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- figures


#: Runs imggate in this interpreter, then prints the modules it ended with, in import
#: order, and those its start-up keeps out (``None`` entries).
_MODULES_PROBE = """\
import json, sys
from imggate._cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("\\nMODULES " + json.dumps([[k, v is None] for k, v in list(sys.modules.items())]))
"""

#: Imports what a run of imggate imported from outside imggate, in the same order, kept
#: out what it kept out, with the same environment: the floor of that run's imports.
_FLOOR_SCRIPT = """\
import importlib, sys
for name in {blocked!r}:
    sys.modules.setdefault(name, None)
for name in {names!r}:
    try:
        importlib.import_module(name)
    except Exception:
        pass
"""


def import_floor(args: Sequence[str], cwd: Path, work: Path) -> tuple[Path, int]:
    """A script importing every module outside imggate that ``imggate ARGS`` ends with
    (the dependencies it really uses, stdlib included), and how many."""
    _, out = run_timed([sys.executable, "-c", _MODULES_PROBE, *args], cwd=cwd)
    held = json.loads(out[out.rindex("\nMODULES ") + len("\nMODULES "):])
    own = ("imggate", "__main__", "_jinja2_module_templates")
    names = [k for k, none in held if not none and not k.startswith(own)]
    blocked = [k for k, none in held if none]
    script = work / "import_floor.py"
    script.write_text(_FLOOR_SCRIPT.format(names=names, blocked=blocked))
    return script, len(names)


def fig_startup(b: Bench) -> list[Row]:
    """``--help`` and ``check`` of the bundled example, each against its import floor."""
    n = b.sizes.startup_rounds
    compileall.compile_dir(str(SRC), quiet=1)
    out = b.work / "startup-reports"
    help_cmd = [*IMGGATE, "--help"]
    # What drawing the command list with typer costs: the interpreter and typer. imggate
    # prints it stored, without typer (imggate._help_text), when the output is a pipe as
    # here; the interpreter's own start (`python -c pass`, below) is its floor.
    help_floor = [sys.executable, "-c", "import typer"]
    check_args = ["check", "oci:examples/app", "--key", "examples/cosign.pub",
                  "--trivy-report", "examples/trivy-report.json", "--insecure-ignore-tlog",
                  "-q", "-o", str(out)]
    check_cmd = [*IMGGATE, *check_args]
    script, count = import_floor(check_args, ROOT, b.work)
    # imggate's own start-up settings (PYDANTIC_DISABLE_PLUGINS) for the floor too.
    floor_env = ["env", "PYDANTIC_DISABLE_PLUGINS=__all__"]
    check_floor = [*floor_env, sys.executable, str(script)]
    issue_imports = "import httpx, pydantic, cryptography"
    issue_floor = [sys.executable, "-c", issue_imports]
    for cmd in (help_cmd, check_cmd, check_floor):  # warm the page cache; fail early
        run_timed(cmd, cwd=ROOT)
    # Below both: the interpreter's own start, with and without site (the .pth files of
    # site-packages run at every start; a machine's may import more than Python needs).
    bare, no_site = [sys.executable, "-c", "pass"], [sys.executable, "-S", "-c", "pass"]
    rows = []
    before = load1()
    ours, peer, python, python_s = alternate(
        [lambda: run_timed(help_cmd, cwd=ROOT)[0], lambda: run_timed(help_floor, cwd=ROOT)[0],
         lambda: run_timed(bare, cwd=ROOT)[0], lambda: run_timed(no_site, cwd=ROOT)[0]], n)
    load = (before, load1())
    rows.append(Row("`imggate --help` (python -m imggate)", "s", ours, "`python -c 'import "
                    "typer'`", peer, ratios(ours, peer), target="< 0.15 s",
                    met=statistics.median(ours) < 0.15, load=load))
    rows.append(Row("`python -c pass`: the interpreter's start, which every Python command "
                    "here pays (site and its .pth files included)", "s", python,
                    "`python -S -c pass` (no site)", python_s, ratios(python, python_s),
                    load=load))
    before = load1()
    ours, peer, issue = alternate([lambda: run_timed(check_cmd, cwd=ROOT)[0],
                                   lambda: run_timed(check_floor, cwd=ROOT)[0],
                                   lambda: run_timed(issue_floor, cwd=ROOT)[0]], n)
    r = ratios(ours, peer)
    load = (before, load1())
    what = ("`imggate check` of the bundled example (oci: layout, key signature, Trivy "
            "report, all reports written)")
    rows.append(Row(what, "s", ours, f"python importing the {count} modules from outside "
                    "imggate that this check ends with (its import floor)", peer, r,
                    target="≤ 2x", met=statistics.median(r) <= 2, load=load))
    rows.append(Row(what, "s", ours, f"`python -c '{issue_imports}'` (issue 22's floor: "
                    "these packages import little until used)", issue, ratios(ours, issue),
                    load=load))
    return rows


def fig_check(b: Bench) -> list[Row]:
    """``check`` with a 10k-finding report against a resolve of the same image: the
    report as the bench has always built it (its findings repeat 85 vulnerabilities) and
    with every finding a vulnerability of its own (nothing shared between findings)."""
    from check_bench import push_signed, write_report

    n = b.sizes.check_findings
    refs, key = push_signed(b.registry, b.work / "check", 1)
    reports = [write_report(b.work / "check", refs[0], n, distinct=d) for d in (False, True)]
    out = b.work / "check" / "out"

    def check_cmd(report: Path) -> list[str]:
        return [*IMGGATE, "check", refs[0], "--trivy-report", str(report), "--key", str(key),
                "--insecure-ignore-tlog", "-q", "-o", str(out)]

    resolve_cmd = [*IMGGATE, "resolve", refs[0]]
    # A report this size has Critical findings: the gate denies (exit 1), by design.
    for report in reports:
        run_timed(check_cmd(report), ok=(1,))
    run_timed(resolve_cmd)
    before = load1()
    shared, distinct, peer = alternate(
        [lambda: run_timed(check_cmd(reports[0]), ok=(1,))[0],
         lambda: run_timed(check_cmd(reports[1]), ok=(1,))[0],
         lambda: run_timed(resolve_cmd)[0]], b.sizes.rounds)
    load = (before, load1())
    rows = []
    each = max(1, round(n / 85))
    for ours, said in ((shared, f"its findings repeat 85 vulnerabilities, ~{each} findings each"),
                       (distinct, "every finding a vulnerability of its own")):
        r = ratios(ours, peer)
        rows.append(Row(f"`imggate check`, 1 signed image, {n:,}-finding Trivy report ({said}), "
                        "all reports written", "s", ours, "`imggate resolve` of the same image",
                        peer, r, target="≤ 2x", met=statistics.median(r) <= 2, load=load))
    return rows


#: The round trip the proxy adds for :func:`fig_rtt` (seconds): long beside the wall
#: time's noise from run to run (~10-20 ms), so that a round trip more or less shows.
RTT = 0.050


def fig_rtt(b: Bench) -> list[Row]:
    """How many round trips to the registry ``check`` of one key-signed image waits for,
    against ``resolve`` of it: each command run through a TCP proxy adding :data:`RTT` a
    round trip and through the same kind of proxy adding none, alternating; the
    difference of the two wall times over :data:`RTT` counts the round trips waited for
    (start-up and CPU are in both and cancel out)."""
    from check_bench import push_signed

    from tcp_proxy import TcpProxy

    refs, key = push_signed(b.registry, b.work / "rtt", 1)
    out = b.work / "rtt" / "out"
    host = b.registry.host

    def commands(through: str) -> tuple[list[str], list[str]]:
        ref = refs[0].replace(host, through)
        return ([*IMGGATE, "check", ref, "--key", str(key), "--insecure-ignore-tlog", "-q",
                 "-o", str(out)], [*IMGGATE, "resolve", ref])

    far = commands(TcpProxy(host, rtt=RTT).start_in_thread())
    near = commands(TcpProxy(host).start_in_thread())
    sides = [lambda cmd=cmd: run_timed(cmd)[0]  # type: ignore[misc]
             for cmd in (far[0], near[0], far[1], near[1])]
    for side in sides:  # warm-up: page cache, connections' first costs
        side()
    before = load1()
    check_far, check_near, resolve_far, resolve_near = alternate(sides, b.sizes.rounds * 2)
    load = (before, load1())
    ours = [(f - n) / RTT for f, n in zip(check_far, check_near, strict=True)]
    peer = [(f - n) / RTT for f, n in zip(resolve_far, resolve_near, strict=True)]
    return [Row(f"round trips to a registry {RTT * 1000:.0f} ms away that `imggate check` of "
                "1 key-signed image waits for (wall through a proxy adding the round trip, "
                "less wall through one adding none, over the round trip)", "RT", ours,
                "`imggate resolve` of the same image", peer, ratios(ours, peer), load=load)]


def fig_convert(b: Bench) -> list[Row]:
    """convert (in process) against ``json.loads`` + ``json.dumps`` of the same file, at
    two sizes in the same rounds (so that the growth from one to the other is measured
    under the same conditions, round by round); the reports as the bench has always built
    them (their findings repeat 85 vulnerabilities) and with every finding a vulnerability
    of its own (see ``convert_bench.build_report``)."""
    from convert_bench import build_report, convert, peer, real_entries

    entries = real_entries()
    sizes = (b.sizes.convert_small, b.sizes.convert_large)
    variants = (False, True)
    sides: list[Callable[[], float]] = []
    files = {}
    for distinct in variants:
        for n in sizes:
            name = f"{n}{'-distinct' if distinct else ''}"
            src, dst = b.work / f"trivy-{name}.json", b.work / f"gl-{name}.json"
            src.write_text(json.dumps(build_report(entries, n, distinct=distinct)),
                           encoding="utf-8")
            if convert(src, dst) != n:
                raise RuntimeError(f"convert wrote other than {n} vulnerabilities")
            files[distinct, n] = src

            def ours_run(src: Path = src, dst: Path = dst) -> float:
                t = time.perf_counter()
                convert(src, dst)
                return time.perf_counter() - t

            def peer_run(src: Path = src) -> float:
                t = time.perf_counter()
                peer(src, b.work / "peer.json")
                return time.perf_counter() - t

            sides += [ours_run, peer_run]
    before = load1()
    samples = alternate(sides, b.sizes.rounds)
    load = (before, load1())
    rows = []
    for v, distinct in enumerate(variants):
        ours_small, peer_small, ours_large, peer_large = samples[4 * v:4 * v + 4]
        said = ("every finding a vulnerability of its own" if distinct else
                "its findings repeat 85 vulnerabilities")
        for n, ours, floor in ((sizes[0], ours_small, peer_small),
                               (sizes[1], ours_large, peer_large)):
            r = ratios(ours, floor)
            size = files[distinct, n].stat().st_size / 1e6
            rows.append(Row(f"`convert` {n:,} findings ({size:.0f} MB Trivy JSON -> GitLab "
                            f"JSON, in process; {said})", "s", ours,
                            "`json.loads` + `json.dumps` of the same file", floor, r,
                            target="≤ 1.3x" if n == sizes[1] else "",
                            met=statistics.median(r) <= 1.3, load=load))
        growth = ratios(ours_large, ours_small)
        ideal = sizes[1] / sizes[0]
        rows.append(Row(f"`convert` growth, {sizes[1]:,} / {sizes[0]:,} findings, round by "
                        f"round (linear: {ideal:g}x; {said})", "x", growth,
                        "the peer's growth, same rounds", ratios(peer_large, peer_small), [],
                        target=f"≤ {ideal * 1.1:g}x",
                        met=statistics.median(growth) <= ideal * 1.1, load=load))
    return rows


def rows_from(figures: list[dict[str, object]]) -> list[Row]:
    """Rows from a bench module's ``run()`` (figure, unit, imggate_samples, peer_name,
    peer_samples, target, load): the ratio is imggate / peer, or for a target written
    ``>= Nx (skopeo / imggate)`` how many times faster imggate is."""
    rows = []
    for f in figures:
        ours = [float(x) for x in f["imggate_samples"]]  # type: ignore[attr-defined]
        peer = [float(x) for x in f["peer_samples"]]  # type: ignore[attr-defined]
        target = str(f.get("target") or "")
        faster = "skopeo" in str(f["peer_name"])
        r = [p / o for o, p in zip(ours, peer, strict=True)] if faster else ratios(ours, peer)
        met = None
        if target and r:
            bound = float(target.split()[1].rstrip("x"))
            med = statistics.median(r)
            met = med >= bound if target.startswith(">=") else med <= bound
        if faster and not target:
            target = "(ratio: skopeo / imggate)"
        load = f.get("load") or (0.0, 0.0)
        rows.append(Row(str(f["figure"]), str(f["unit"]), ours, str(f["peer_name"]), peer, r,
                        target=target.replace(">=", "≥").replace("<=", "≤"), met=met,
                        load=(float(load[0]), float(load[1]))))  # type: ignore[index]
    return rows


def fig_resolve(b: Bench) -> list[Row]:
    """``resolve`` of 200 images against curl over the same GETs and a skopeo loop
    (bench/resolve_bench.py, its own registry)."""
    import resolve_bench

    return rows_from(resolve_bench.run(quick=b.quick))


def fig_audit(b: Bench) -> list[Row]:
    """``audit`` of 1,000 tags against curl over the same GETs and a skopeo loop
    (bench/audit_bench.py, its own registry)."""
    import audit_bench

    return rows_from(audit_bench.run(quick=b.quick))


@contextmanager
def _process(cmd: Sequence[str], *, new_session: bool = False
             ) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, start_new_session=new_session)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def fig_webhook(b: Bench) -> list[Row]:
    """``imggate serve`` at saturation against bare Starlette on the same stack; cold p99.

    The saturation rounds are ``admission_bench.saturation_rounds``': each server in a
    session of its own, pinned to one core at nice -20, ``wrk`` (one thread) on the other,
    a warm-up of each, then many short rounds, ABBA."""
    from admission_bench import saturation_rounds, wait_listening, webhook_world

    from admission.serve_harness import pod, review, start_serve
    from registry_harness import free_port

    require("wrk")
    reg = b.registry
    work = b.work / "webhook"
    work.mkdir()
    world = webhook_world(work, reg, b.sizes.cold_digests + 1)
    names, rules, tls, script, body = (world.names, world.rules, world.tls, world.script,
                                       world.warm_body)
    port = free_port()
    bare_cmd = [sys.executable, str(HERE / "bare_admission_app.py"), str(port), str(tls.cert),
                str(tls.key)]
    with _process(bare_cmd, new_session=True) as bare:
        wait_listening(port)
        server = start_serve(work / "serve", ["--rules", str(rules), "--insecure-ignore-tlog",
                                              "--cache-ttl", "3600", "--tag-ttl", "3600"],
                             tls=tls, new_session=True)
        try:
            before = load1()
            cold = []
            with server.client() as c:
                for name in names[1:]:
                    doc = json.dumps(review(pod([reg.ref(name, "v1")]), namespace="prod-bench"))
                    t = time.perf_counter()
                    allowed = c.post("/validate", content=doc).json()["response"]["allowed"]
                    cold.append((time.perf_counter() - t) * 1000)
                    if not allowed:
                        raise RuntimeError(f"the webhook refused {name}, a signed image")
                answer = c.post("/validate", content=body.read_bytes()).json()
                if not answer["response"]["allowed"]:
                    raise RuntimeError("the webhook refused the warm image")
            cold_load = (before, load1())
            url, bare_url = f"{server.url}/validate", f"https://127.0.0.1:{port}/validate"
            before = load1()
            (ours, peer), placement = saturation_rounds(
                [(url, server.process.pid), (bare_url, bare.pid)], body, script,
                rounds=b.sizes.wrk_rounds, seconds=b.sizes.wrk_seconds,
                warmup=b.sizes.wrk_warmup)
            load = (before, load1())
        finally:
            server.stop()
    for name, runs in (("imggate", ours), ("bare", peer)):
        errors = sum(r["errors"] for r in runs)
        if errors:
            raise RuntimeError(f"wrk saw {errors:.0f} errors ({name})")
    rps = [r["rps"] for r in ours]
    bare_rps = [r["rps"] for r in peer]
    cpu = [r["cpu_us"] for r in ours]
    bare_cpu = [r["cpu_us"] for r in peer]
    share = ratios(rps, bare_rps)
    cost = ratios(cpu, bare_cpu)
    core = statistics.median(r["server_cpu"] for r in ours + peer)
    client = max(r["client_cpu"] for r in ours + peer)
    how = (f"wrk, 64 TLS connections held; {placement}; {b.sizes.wrk_seconds} s rounds after "
           f"{b.sizes.wrk_warmup} s of warm-up each; the servers had {core:.0%} of their core "
           f"(median), wrk at most {client:.0%} of its")
    return [
        Row(f"`imggate serve`, warm, at saturation ({how})", "/s", rps,
            "bare Starlette, same uvicorn/uvloop/httptools/TLS", bare_rps, share,
            ratio_unit="%", target="≥ 80%", met=statistics.median(share) >= 0.8, load=load),
        Row("`imggate serve`, server CPU per warm review at saturation", "us", cpu,
            "bare Starlette", bare_cpu, cost, target="≤ 1.25x",
            met=statistics.median(cost) <= 1.25, load=load),
        Row(f"`imggate serve`, cold: p99 of {len(cold)} first-seen signed digests, one at a "
            f"time (p50 {pct(cold, 0.5):.1f} ms, max {max(cold):.1f} ms)", "ms",
            [pct(cold, 0.99)], "", [], [],
            target="≤ 50 ms", met=pct(cold, 0.99) <= 50, load=cold_load),
    ]


# -------------------------------------------------------------------------------- main


def pct(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


RUNNERS: dict[str, Callable[[Bench], list[Row]]] = {
    "startup": fig_startup, "check": fig_check, "rtt": fig_rtt, "convert": fig_convert,
    "resolve": fig_resolve, "audit": fig_audit, "webhook": fig_webhook,
}


def main(argv: list[str] | None = None) -> int:
    """Run the figures asked for, print the table; 1 if a figure could not be measured."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="small sizes, one round: keeps the script working, times nothing")
    ap.add_argument("--only", default=",".join(FIGURES),
                    help=f"comma-separated figures to run (default: all of {','.join(FIGURES)})")
    ap.add_argument("--rounds", type=int, help="alternating rounds per figure")
    args = ap.parse_args(argv)
    only = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = sorted(set(only) - set(FIGURES))
    if unknown:
        ap.error(f"unknown figure(s) {', '.join(unknown)}: choose from {', '.join(FIGURES)}")
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = Sizes(**{**sizes.__dict__, "rounds": args.rounds})
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    rows: list[Row] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="imggate-run-all-") as tmp:
        bench = Bench(sizes, Path(tmp), args.quick)
        try:
            for name in only:
                note(f"{name} ...")
                try:
                    rows += RUNNERS[name](bench)
                except Exception as e:  # one figure's failure must not hide the others
                    traceback.print_exc()
                    failures.append(f"{name}: {type(e).__name__}: {e}")
        finally:
            bench.stop()
    print_table(rows, failures, sizes, args.quick, started, time.perf_counter() - t0)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
