from __future__ import annotations

from pathlib import Path

from gs_engine.runtimes.nodeinfo import count_numa_nodes, parse_nvidia_smi


def test_parse_nvidia_smi_rows() -> None:
    text = "0, NVIDIA H100 80GB HBM3, 81559, GPU-aaaa\n1, NVIDIA L4, 23034, GPU-bbbb\n"
    gpus = parse_nvidia_smi(text)
    assert [g.index for g in gpus] == [0, 1]
    assert gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert gpus[0].memory_bytes == 81559 * 2**20
    assert gpus[1].uuid == "GPU-bbbb"


def test_parse_nvidia_smi_skips_noise_and_unknown_memory() -> None:
    text = "No devices were found\n\n0, Tesla T4, [N/A], GPU-c\n"
    gpus = parse_nvidia_smi(text)
    assert len(gpus) == 1
    assert gpus[0].memory_bytes is None


def test_numa_nodes_counted_from_the_directory(tmp_path: Path) -> None:
    for name in ("node0", "node1", "possible", "has_cpu", "power"):
        (tmp_path / name).mkdir()
    assert count_numa_nodes(tmp_path) == 2


def test_numa_nodes_default_to_one(tmp_path: Path) -> None:
    assert count_numa_nodes(tmp_path / "absent") == 1
    assert count_numa_nodes(tmp_path) == 1
