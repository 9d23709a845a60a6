"""Gateway benchmark: GS-Engine's gateway against HAProxy and nginx, in one run, on loopback.

    .venv/bin/python bench/gateway.py                      # 10 s per run, 2 rounds
    .venv/bin/python bench/gateway.py --duration 3 --rounds 1 --workers 2

Starts a backend (nginx, one worker, two server blocks each serving a 64-byte file), then
the proxies in front of it, each balancing over the two backend ports:

- haproxy:  one thread, keep-alive both sides, `http-reuse always`, X-Forwarded-For and a
            request id header added (the anchor every ratio is taken against);
- nginx:    one worker, upstream keepalive, X-Forwarded-For and a request id header;
- gse:      `python -m gs_engine.gateway`, one worker, 120 routes, metrics served,
            request ids and forwarding headers on;
- gse-wN:   the same with N worker processes on one port (SO_REUSEPORT).

Each is driven by wrk (1 and 64 connections, rounds interleaved). The report gives req/s,
p50/p99 latency, the p50 latency each proxy adds over hitting the backend directly, and the
proxy's CPU time per request (utime+stime from /proc/PID/stat, children included), each as a
ratio against HAProxy. Figures go to a JSON file and a PNG chart.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

HOST = "127.0.0.1"
ROUTES = 120
BENCH_ROUTE = 57  # the route wrk hits; the others are there to make the table real
TOOLS = {"nginx": "nginx", "haproxy": "haproxy", "wrk": "wrk"}  # binary -> Debian package


@dataclass
class Run:
    target: str
    connections: int
    round: int
    requests: int
    rps: float
    p50_us: float
    p99_us: float
    errors: int
    cpu_s: float  # proxy CPU seconds during the run (0 for the direct run)
    user_s: float = 0.0  # of which in user space (the proxy's own code)
    sys_s: float = 0.0  # of which in the kernel (system calls, TCP on loopback)

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_s / self.requests * 1e6 if self.requests else 0.0

    @property
    def user_us_per_request(self) -> float:
        return self.user_s / self.requests * 1e6 if self.requests else 0.0

    @property
    def sys_us_per_request(self) -> float:
        return self.sys_s / self.requests * 1e6 if self.requests else 0.0


# -- tools and processes ------------------------------------------------------------------------
def check_tools() -> None:
    missing = [pkg for binary, pkg in TOOLS.items() if shutil.which(binary) is None]
    if missing:
        sys.exit(
            f"missing tools: {', '.join(missing)} is not installed. "
            f"Install with `apt-get install -y {' '.join(missing)}` or run bench/install-tools.sh"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{name} did not listen on port {port} within {timeout:g} s")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process and of its live descendants, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for p in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])  # utime (field 14 of stat)
        system += int(fields[12])  # stime (field 15)
    return user / tick, system / tick


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for k in kids:
            out.append(int(k))
            todo.append(int(k))
    return out


class Services:
    """The backend and the proxies, each a child process in one temporary directory."""

    def __init__(self, workdir: Path, workers: int) -> None:
        self.dir = workdir
        self.workers = workers
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.backend_ports = (free_port(), free_port())
        (workdir / "www").mkdir()
        (workdir / "www" / "64.bin").write_bytes(b"x" * 63 + b"\n")

    def start_all(self) -> None:
        self._nginx_backend()
        self._haproxy()
        self._nginx_proxy()
        self._gse("gse", 1)
        if self.workers > 1:
            self._gse(f"gse-w{self.workers}", self.workers)

    def _spawn(self, name: str, argv: list[str], port: int, **kw: object) -> None:
        log = open(self.dir / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the child
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, **kw)  # type: ignore[call-overload]
        self.procs[name] = proc
        self.ports[name] = port
        wait_port(port, proc, name)

    def _nginx_conf(self, name: str, body: str) -> Path:
        d = self.dir / name
        d.mkdir()
        conf = d / "nginx.conf"
        conf.write_text(
            f"""
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
{body}
}}
"""
        )
        return conf

    def _nginx_backend(self) -> None:
        www = self.dir / "www"
        servers = "".join(
            f"""
    server {{
        listen {HOST}:{port} reuseport backlog=4096;
        location / {{ root {www}; try_files /64.bin =404; default_type application/octet-stream; }}
    }}"""
            for port in self.backend_ports
        )
        conf = self._nginx_conf("backend", servers)
        self._spawn(
            "direct", ["nginx", "-p", str(self.dir), "-c", str(conf), "-e", "stderr"], self.backend_ports[0]
        )
        wait_port(self.backend_ports[1], self.procs["direct"], "backend")

    def _nginx_proxy(self) -> None:
        port = free_port()
        upstreams = "".join(f"server {HOST}:{p};" for p in self.backend_ports)
        conf = self._nginx_conf(
            "nginx-proxy",
            f"""
    upstream backend {{ {upstreams} keepalive 128; }}
    server {{
        listen {HOST}:{port} backlog=4096;
        location / {{
            proxy_pass http://backend/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Request-Id $request_id;
        }}
    }}""",
        )
        self._spawn("nginx", ["nginx", "-p", str(self.dir), "-c", str(conf), "-e", "stderr"], port)

    def _haproxy(self) -> None:
        port = free_port()
        servers = "\n".join(f"    server s{i} {HOST}:{p}" for i, p in enumerate(self.backend_ports))
        cfg = self.dir / "haproxy.cfg"
        cfg.write_text(
            f"""
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always
frontend fe
    bind {HOST}:{port}
    option forwardfor
    unique-id-format %{{+X}}o\\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid
    http-request set-header X-Request-Id %[unique-id]
    default_backend be
backend be
    balance leastconn
{servers}
"""
        )
        self._spawn("haproxy", ["haproxy", "-db", "-f", str(cfg)], port)

    def _gse(self, name: str, workers: int) -> None:
        port = free_port()
        routes = [
            {
                "namespace": f"ns{i % 7}",
                "service": f"svc{i}",
                "path_prefix": f"/ns{i % 7}/svc{i}",
                "endpoints": [
                    {"id": f"svc{i}-{j}", "host": HOST, "port": p} for j, p in enumerate(self.backend_ports)
                ],
            }
            for i in range(ROUTES)
        ]
        path = self.dir / f"{name}-routes.json"
        path.write_text(json.dumps(routes))
        metrics = free_port() if workers == 1 else None
        argv = [sys.executable, "-m", "gs_engine.gateway", "--port", str(port), "--routes", str(path)]
        argv += ["--workers", str(workers)]
        if metrics is not None:
            argv += ["--metrics-port", str(metrics)]
            self.ports[f"{name}-metrics"] = metrics
        self._spawn(name, argv, port)

    def gse_hot_path(self) -> str:
        """What the gateway said it runs: "compiled" or "python (why)" (from its start-up line)."""
        log = (self.dir / "gse.log").read_text(errors="replace")
        found = re.search(r"hot path ([^)]*\)?)\)", log)
        return found.group(1) if found else "unknown"

    def path(self, name: str) -> str:
        if name.startswith("gse"):
            return f"/ns{BENCH_ROUTE % 7}/svc{BENCH_ROUTE}/"
        return "/"

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.procs.items():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop on SIGTERM; killing it", file=sys.stderr)
                proc.kill()


# -- wrk ------------------------------------------------------------------------------------------
_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def _latency_us(text: str, pct: str) -> float:
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if m is None:
        raise RuntimeError(f"wrk printed no {pct}% latency:\n{text}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(text: str) -> tuple[int, float, float, float, int]:
    """(requests, req/s, p50 us, p99 us, errors) from `wrk --latency` output."""
    m = re.search(r"(\d+) requests in", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m is None or rps is None:
        raise RuntimeError(f"cannot read wrk output:\n{text}")
    errors = 0
    e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if e:
        errors += sum(int(g) for g in e.groups())
    n = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if n:
        errors += int(n.group(1))
    return int(m.group(1)), float(rps.group(1)), _latency_us(text, "50"), _latency_us(text, "99"), errors


def drive(services: Services, name: str, connections: int, duration: float, rnd: int) -> Run:
    url = f"http://{HOST}:{services.ports[name]}{services.path(name)}"
    pid = services.procs[name].pid
    measure = name != "direct"
    before = cpu_seconds(pid) if measure else (0.0, 0.0)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = cpu_seconds(pid) if measure else (0.0, 0.0)
    user, system = after[0] - before[0], after[1] - before[1]
    requests, rps, p50, p99, errors = parse_wrk(out)
    return Run(name, connections, rnd, requests, rps, p50, p99, errors, user + system, user, system)


# -- report ---------------------------------------------------------------------------------------
def summarise(runs: list[Run]) -> dict[str, dict[str, dict[str, float]]]:
    """Per target and connection count: the median over rounds of each figure, and the ratios."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    keys = sorted({(r.target, r.connections) for r in runs}, key=lambda k: (k[0], k[1]))
    for target, conns in keys:
        mine = [r for r in runs if r.target == target and r.connections == conns]
        out.setdefault(target, {})[str(conns)] = {
            "rps": statistics.median(r.rps for r in mine),
            "p50_us": statistics.median(r.p50_us for r in mine),
            "p99_us": statistics.median(r.p99_us for r in mine),
            "cpu_us_per_request": statistics.median(r.cpu_us_per_request for r in mine),
            "user_us_per_request": statistics.median(r.user_us_per_request for r in mine),
            "sys_us_per_request": statistics.median(r.sys_us_per_request for r in mine),
            "errors": sum(r.errors for r in mine),
        }
    for conns_figures in out.values():
        for conns, fig in conns_figures.items():
            direct = out["direct"][conns]
            fig["p50_added_us"] = fig["p50_us"] - direct["p50_us"]
            fig["p99_added_us"] = fig["p99_us"] - direct["p99_us"]
    anchor = out.get("haproxy", {})
    for conns_figures in out.values():
        for conns, fig in conns_figures.items():
            h = anchor.get(conns)
            if not h:
                continue
            fig["rps_vs_haproxy"] = fig["rps"] / h["rps"]
            fig["p50_added_vs_haproxy"] = _ratio(fig["p50_added_us"], h["p50_added_us"])
            fig["cpu_vs_haproxy"] = _ratio(fig["cpu_us_per_request"], h["cpu_us_per_request"])
            fig["user_vs_haproxy"] = _ratio(fig["user_us_per_request"], h["user_us_per_request"])
            fig["sys_vs_haproxy"] = _ratio(fig["sys_us_per_request"], h["sys_us_per_request"])
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def print_table(summary: dict[str, dict[str, dict[str, float]]]) -> None:
    cols = (
        "conns",
        "req/s",
        "x hap",
        "p50 us",
        "p99 us",
        "+p50 us",
        "x hap",
        "cpu us/req",
        "x hap",
        "user us",
        "x hap",
        "sys us",
        "x hap",
        "err",
    )
    print(f"\n{'target':<9}" + "".join(f"{c:>11}" for c in cols))
    for target, per in summary.items():
        for conns, f in sorted(per.items(), key=lambda kv: int(kv[0])):
            row = (
                conns,
                f"{f['rps']:.0f}",
                f"{f.get('rps_vs_haproxy', float('nan')):.2f}",
                f"{f['p50_us']:.0f}",
                f"{f['p99_us']:.0f}",
                f"{f['p50_added_us']:.0f}",
                f"{f.get('p50_added_vs_haproxy', float('nan')):.2f}",
                f"{f['cpu_us_per_request']:.1f}",
                f"{f.get('cpu_vs_haproxy', float('nan')):.2f}",
                f"{f['user_us_per_request']:.1f}",
                f"{f.get('user_vs_haproxy', float('nan')):.2f}",
                f"{f['sys_us_per_request']:.1f}",
                f"{f.get('sys_vs_haproxy', float('nan')):.2f}",
                f"{f['errors']:.0f}",
            )
            print(f"{target:<9}" + "".join(f"{v:>11}" for v in row))


def check_targets(summary: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    g = summary.get("gse", {})
    lines = []
    checks = (
        ("throughput at 64 connections >= 0.9 x HAProxy", g.get("64", {}).get("rps_vs_haproxy"), 0.9, True),
        (
            "p50 latency added at 1 connection <= 1.3 x HAProxy",
            g.get("1", {}).get("p50_added_vs_haproxy"),
            1.3,
            False,
        ),
        (
            "CPU per request at 64 connections <= 1.2 x HAProxy",
            g.get("64", {}).get("cpu_vs_haproxy"),
            1.2,
            False,
        ),
    )
    for text, value, bound, at_least in checks:
        if value is None:
            continue
        ok = value >= bound if at_least else value <= bound
        lines.append(f"{'PASS' if ok else 'MISS'}  {text}: {value:.2f}")
    return lines


def chart(summary: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install matplotlib)", file=sys.stderr)
        return
    targets = [t for t in summary if t != "direct"]
    panels = (
        ("req/s, 64 connections", "64", "rps"),
        ("p50 latency added (us), 1 connection", "1", "p50_added_us"),
        ("CPU us per request, 64 connections", "64", "cpu_us_per_request"),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for ax, (title, conns, key) in zip(axes, panels, strict=True):
        values = [summary[t].get(conns, {}).get(key, 0.0) for t in targets]
        colours = [
            "#888888" if t == "haproxy" else "#3b7dd8" if t.startswith("gse") else "#5aa469" for t in targets
        ]
        ax.bar(targets, values, color=colours)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.0f}" if v >= 10 else f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    fig.suptitle("GS-Engine gateway vs HAProxy and nginx (loopback, 64-byte responses)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--connections", default="1,64", help="comma-separated wrk connection counts")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="gateway workers for gse-wN")
    parser.add_argument("--only", default="", help="comma-separated targets to run (default all)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="folder for JSON and PNG")
    args = parser.parse_args(argv)
    check_tools()
    conns = [int(c) for c in args.connections.split(",")]
    with tempfile.TemporaryDirectory(prefix="gse-bench-") as tmp:
        services = Services(Path(tmp), args.workers)
        try:
            services.start_all()
            hot_path = services.gse_hot_path()
            print(f"gse gateway hot path: {hot_path}", flush=True)
            targets = ["direct", "haproxy", "nginx", "gse"] + (
                [f"gse-w{args.workers}"] if args.workers > 1 else []
            )
            if args.only:
                wanted = set(args.only.split(",")) | {"direct", "haproxy"}
                targets = [t for t in targets if t in wanted]
            for name in targets:  # warm up: pools, caches, the interpreter
                drive(services, name, 8, 1, -1)
            runs: list[Run] = []
            for rnd in range(args.rounds):
                for c in conns:
                    for name in targets:
                        run = drive(services, name, c, args.duration, rnd)
                        runs.append(run)
                        print(
                            f"round {rnd} {name:<8} c={c:<3} {run.rps:>9.0f} req/s  p50 {run.p50_us:>6.0f} us"
                            f"  p99 {run.p99_us:>6.0f} us  cpu {run.cpu_us_per_request:5.1f} us/req"
                            f" (user {run.user_us_per_request:5.1f}, sys {run.sys_us_per_request:5.1f})",
                            flush=True,
                        )
            scraped = scrape_metrics(services)
        finally:
            services.stop()
    summary = summarise(runs)
    print_table(summary)
    verdicts = check_targets(summary)
    print("\n" + "\n".join(verdicts))
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "duration_s": args.duration,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "routes": ROUTES,
        "gse_hot_path": hot_path,
        "summary": summary,
        "targets": verdicts,
        "gateway_metrics_requests_total": scraped,
        "runs": [
            asdict(r)
            | {
                "cpu_us_per_request": r.cpu_us_per_request,
                "user_us_per_request": r.user_us_per_request,
                "sys_us_per_request": r.sys_us_per_request,
            }
            for r in runs
        ],
    }
    (args.out / "gateway.json").write_text(json.dumps(doc, indent=2))
    chart(summary, args.out / "gateway.png")
    print(f"\nwrote {args.out / 'gateway.json'} and {args.out / 'gateway.png'}")
    return 0


def scrape_metrics(services: Services) -> float | None:
    """Requests the single-worker gateway counted, from its Prometheus endpoint (a sanity check)."""
    port = services.ports.get("gse-metrics")
    if port is None:
        return None
    text = urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("gse_gateway_requests_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


if __name__ == "__main__":
    raise SystemExit(main())
