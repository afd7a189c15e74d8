"""Clocks and memory probes: wall and CPU time, resident memory (current and peak), the machine."""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

MIB = 1024 * 1024


def rss_mib() -> float:
    """Current resident set size of this process in MiB."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except OSError:
        try:
            import psutil  # optional

            return psutil.Process().memory_info().rss / MIB
        except ImportError:
            return peak_rss_mib()


def peak_rss_mib() -> float:
    """Peak resident set size (VmHWM) of this process in MiB since start or the last reset."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux ``clear_refs``); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def release_memory() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``), so peaks start low."""
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass
class Sample:
    """One timed call: wall and process-CPU seconds, peak RSS during it (MiB), device peak."""

    wall: float
    cpu: float
    peak_rss: float
    base_rss: float
    device_peak: float | None = None  # MiB of CUDA memory, where the device is a GPU


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Sample, Any]:
    """Run ``fn`` once and measure it (synchronising the GPU where there is one)."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    base = rss_mib()
    exact = reset_peak_rss()
    before_peak = peak_rss_mib()
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    if cuda:
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = peak_rss_mib() if exact else max(peak_rss_mib(), before_peak)
    dev_peak = torch.cuda.max_memory_allocated(device) / MIB if cuda else None
    return Sample(wall, cpu, peak, base, dev_peak), out


def summarize(samples: list[Sample]) -> dict:
    """Median wall/CPU seconds over repeats, every wall time, and the largest peak RSS."""
    if not samples:
        return {"median_s": None, "cpu_median_s": None, "runs_s": [], "repeats": 0}
    out = {
        "median_s": statistics.median(s.wall for s in samples),
        "cpu_median_s": statistics.median(s.cpu for s in samples),
        "min_s": min(s.wall for s in samples),
        "runs_s": [round(s.wall, 4) for s in samples],
        "repeats": len(samples),
        "peak_rss_mib": round(max(s.peak_rss for s in samples), 1),
        "peak_over_start_mib": round(max(s.peak_rss - s.base_rss for s in samples), 1),
    }
    peaks = [s.device_peak for s in samples if s.device_peak is not None]
    if peaks:
        out["device_peak_mib"] = round(max(peaks), 1)
    return out


def ratio(num: float | None, den: float | None) -> float | None:
    """``num / den`` rounded to 3 decimals, None if either is missing or ``den`` is 0."""
    if num is None or not den:
        return None
    return round(num / den, 3)


def cpu_model() -> str:
    """The CPU's model name as the OS reports it."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_capability() -> str | None:
    """The SIMD level torch's CPU kernels use (AVX2, AVX512, ...)."""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine(device: torch.device) -> dict:
    """What the numbers were measured on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    info: dict[str, Any] = {
        "device": str(device),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": cores,
        "cpu_capability": _cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "peak_rss_exact": reset_peak_rss(),
    }
    try:
        with open("/proc/meminfo") as fh:
            info["mem_total_gib"] = round(int(fh.readline().split()[1]) / 1024**2, 1)
    except OSError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    from importlib.metadata import PackageNotFoundError, version

    for key, dist in (("timm", "timm"), ("grad_cam", "grad-cam"), ("numpy", "numpy")):
        try:
            info[key] = version(dist)
        except PackageNotFoundError:
            info[key] = None
    return info


def log(msg: str) -> None:
    """A timestamped progress line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
