"""What the registry benchmarks (``resolve_bench.py``, ``audit_bench.py``) share.

- :func:`alternate`: rounds of every side, the order reversed every other round (a
  drift in what the shared machine gives falls on every side alike);
- :func:`curl_parallel`: the floor, ``curl --parallel`` over the GETs imggate makes,
  with imggate's ``Accept`` header and as many connections as imggate's pool holds
  per host;
- :func:`count_traffic`: requests and TCP connections a command made, counted by
  the registry itself (its access log names each request's client address and port),
  in a run of its own: the timed rounds run with the log off, as ``run_all.py``'s do;
- :func:`spread`, :func:`load1`: how figures and machine load are printed.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from registry_harness import Registry

#: The Accept header of imggate's manifest requests (``imggate.registry.interface.ACCEPT``).
OCI_ACCEPT = ("application/vnd.oci.image.index.v1+json, "
              "application/vnd.oci.image.manifest.v1+json, "
              "application/vnd.docker.distribution.manifest.list.v2+json, "
              "application/vnd.docker.distribution.manifest.v2+json")
#: imggate's pool holds 16 connections per host (``RequestLimits.per_host``): curl gets as many.
CURL_PARALLEL = 16
_REMOTE = re.compile(r'http\.request\.remoteaddr="?([^" ]+)')
_URI = re.compile(r'http\.request\.uri="?([^" ]+)')


def load1() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def spread(values: Sequence[float], unit: str = "s") -> str:
    """``median (min-max)`` of ``values``."""
    fmt = "{:.3f}" if unit == "s" else "{:.2f}"
    med = fmt.format(statistics.median(values))
    if len(values) == 1:
        return f"{med} {unit}"
    return f"{med} {unit} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def alternate(sides: Sequence[Callable[[], float]], rounds: int) -> list[list[float]]:
    """``rounds`` samples of each side, the order reversed every other round."""
    out: list[list[float]] = [[] for _ in sides]
    order = list(range(len(sides)))
    for i in range(rounds):
        for k in (order if i % 2 == 0 else order[::-1]):
            out[k].append(sides[k]())
    return out


def get_json(url: str) -> dict[str, object]:
    """One manifest, to learn the GETs a client makes after it."""
    req = urllib.request.Request(url, headers={"Accept": OCI_ACCEPT})
    with urllib.request.urlopen(req, timeout=30) as r:
        doc = json.loads(r.read())
    assert isinstance(doc, dict)
    return doc


def curl_parallel(urls: Sequence[str], config: Path) -> list[str]:
    """The command of ``curl --parallel`` over ``urls`` (run it with :func:`run_curl`)."""
    config.write_text("".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls))
    return ["curl", "-s", "--parallel", "--parallel-max", str(CURL_PARALLEL), "-H",
            f"Accept: {OCI_ACCEPT}", "-w", "%{http_code}\n", "-K", str(config)]


def run_curl(cmd: Sequence[str], n: int) -> float:
    """Wall seconds of one ``curl`` run; every one of its ``n`` answers must be 200."""
    started = time.perf_counter()
    out = subprocess.run(list(cmd), capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - started
    codes = out.split()
    if len(codes) != n or set(codes) != {"200"}:
        raise SystemExit(f"curl: expected {n} answers 200, got {sorted(set(codes))} "
                         f"x {len(codes)}")
    return elapsed


@dataclass(frozen=True)
class Traffic:
    """What one command asked of the registry."""

    requests: int
    connections: int


def _restart(reg: Registry, access_log: bool) -> Registry:
    """``reg`` restarted on the same storage and address, its access log on or off."""
    reg.stop()
    config = json.loads(reg.config_path.read_text())
    config["log"] = ({"level": "info", "accesslog": {"disabled": False}} if access_log
                     else {"level": "warn", "accesslog": {"disabled": True}})
    reg.config_path.write_text(json.dumps(config))
    log = reg.log_path.open("ab")
    proc = subprocess.Popen(["docker-registry", "serve", str(reg.config_path)], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    fresh = Registry(reg.host, reg.root, reg.config_path, reg.log_path, proc, reg.auth,
                     reg.username, reg.password, reg.token_server)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{fresh.url}/v2/", timeout=1).close()
            return fresh
        except urllib.error.HTTPError:
            return fresh  # 401: up, and asking for credentials
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the registry did not come back after a restart")


def count_traffic(reg: Registry, commands: dict[str, Callable[[], object]]
                  ) -> tuple[Registry, dict[str, Traffic]]:
    """Run each command once with the registry's access log on; count what each asked.

    Returns the registry (restarted with its log off again, as the timed rounds want
    it) and, per command, its ``/v2/`` requests and the distinct client ``address:port``
    pairs they came from (TCP connections).
    """
    reg = _restart(reg, access_log=True)
    counted: dict[str, Traffic] = {}
    try:
        for name, command in commands.items():
            start = reg.log_path.stat().st_size
            command()
            time.sleep(0.5)  # the registry logs a request after answering it
            with reg.log_path.open("rb") as f:
                f.seek(start)
                text = f.read().decode(errors="replace")
            remotes, requests = set(), 0
            for line in text.splitlines():
                uri = _URI.search(line)
                if "response completed" not in line or not uri \
                        or not uri.group(1).startswith("/v2/") or uri.group(1) == "/v2/":
                    continue
                requests += 1
                remote = _REMOTE.search(line)
                if remote:
                    remotes.add(remote.group(1))
            counted[name] = Traffic(requests, len(remotes))
    except BaseException:
        reg.stop()
        raise
    return _restart(reg, access_log=False), counted


def children_cpu() -> float:
    """User + system CPU seconds of every waited-for child process so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
