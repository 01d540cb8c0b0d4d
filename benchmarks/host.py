"""The machine a speed benchmark ran on, printed beside its numbers.

This project's machines are not all alike: one session's 2-core host was a Zen 4 with AVX512-BF16
and 32 MB of L3, another's a Zen 2 with AVX2 only and 16 MB, where an update took ~1.8x as long and
bf16 was emulated. A time or latency without its host cannot be compared with another; ratios
measured side by side in one run can.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from dreamer2.agent import cpu_bf16_matmul_speedup


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux), empty elsewhere."""
    try:
        block = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())}


def describe() -> dict[str, object]:
    """CPU model (name, family and model numbers: "AMD EPYC" alone names no generation), cores,
    L3 size, PyTorch's vector capability, how fast bf16 products run against fp32 ones (measured),
    the torch version, and the GPU if any."""
    cpu = _cpuinfo()
    l3 = Path("/sys/devices/system/cpu/cpu0/cache/index3/size")
    info: dict[str, object] = {
        "cpu": cpu.get("model name") or platform.processor() or platform.machine(),
        "cpu_family_model": f"{cpu['cpu family']}/{cpu['model']}" if "cpu family" in cpu and "model" in cpu else None,
        "cores": os.cpu_count(), "l3": l3.read_text().strip() if l3.exists() else None,
        "capability": torch.backends.cpu.get_cpu_capability(), "bf16_matmul_speedup": round(cpu_bf16_matmul_speedup(), 2),
        "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info
