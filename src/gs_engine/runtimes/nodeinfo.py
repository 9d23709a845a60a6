"""What this machine offers: CPU, memory, NUMA nodes and NVIDIA GPUs.

Parsing is pure (`parse_nvidia_smi`, `count_numa_nodes` over a directory); discovery is
`local_node()`, which never fails because an optional tool (nvidia-smi) is missing or hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import re
import shutil
import socket
from pathlib import Path

import psutil

from gs_engine.runtimes.base import GpuInfo, NodeInfo

NVIDIA_SMI_QUERY = ("--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits")
_NUMA_DIR = Path("/sys/devices/system/node")
_NODE_NAME = re.compile(r"node\d+")


def parse_nvidia_smi(text: str) -> tuple[GpuInfo, ...]:
    """Rows of `index, name, memory.total (MiB), uuid`; malformed rows are skipped."""
    gpus: list[GpuInfo] = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 2 or not fields[0].isdigit():
            continue
        memory: int | None = None
        if len(fields) > 2:
            with contextlib.suppress(ValueError):
                memory = int(float(fields[2]) * 2**20)
        uuid = fields[3] if len(fields) > 3 else ""
        gpus.append(GpuInfo(index=int(fields[0]), name=fields[1], memory_bytes=memory, uuid=uuid))
    return tuple(gpus)


def count_numa_nodes(node_dir: Path = _NUMA_DIR) -> int:
    """NUMA nodes listed by the kernel (`node0`, `node1`, ...); 1 where the directory is absent."""
    try:
        count = sum(1 for entry in node_dir.iterdir() if _NODE_NAME.fullmatch(entry.name))
    except OSError:
        return 1
    return max(1, count)


async def detect_gpus(timeout: float = 3.0, binary: str = "nvidia-smi") -> tuple[GpuInfo, ...]:
    """NVIDIA GPUs via nvidia-smi; () when the tool is missing, fails or exceeds `timeout`."""
    path = shutil.which(binary)
    if path is None:
        return ()
    try:
        proc = await asyncio.create_subprocess_exec(
            path,
            *NVIDIA_SMI_QUERY,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return ()
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return ()
    if proc.returncode != 0:
        return ()
    return parse_nvidia_smi(out.decode("utf-8", "replace"))


def node_labels(runtime: str) -> dict[str, str]:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {
        "kubernetes.io/hostname": socket.gethostname(),
        "kubernetes.io/os": platform.system().lower(),
        "kubernetes.io/arch": arch,
        "gs-engine.dev/runtime": runtime,
    }


async def local_node(runtime: str, gpus: tuple[GpuInfo, ...] | None = None) -> NodeInfo:
    """This machine as a NodeInfo. Pass `gpus` to reuse an earlier detection."""
    if gpus is None:
        gpus = await detect_gpus()
    memory = psutil.virtual_memory()
    return NodeInfo(
        name=socket.gethostname(),
        runtime=runtime,
        cpu_cores=psutil.cpu_count(logical=True) or 1,
        memory_bytes=int(memory.total),
        cpu_percent=float(psutil.cpu_percent(interval=None)),
        memory_available_bytes=int(memory.available),
        gpus=gpus,
        numa_nodes=count_numa_nodes(),
        labels=node_labels(runtime),
        ready=True,
    )
