"""(g) The served app's memory and disk over many ``/explain`` requests, background files
included: half the runs' files are asked for at once (``/files``, as an API client does), the
others are left to the app's idle timer (as a page that never opens its downloads). The server
process's resident memory (``VmRSS``) after a warm-up is compared with the same after the last
request once every run's files are written; the run folders and Gradio's cache are summed
beside it (the disk budget removes the oldest runs).
"""

from __future__ import annotations

import time
from pathlib import Path

from xai_app.budget import folder_bytes

GROWTH_LIMIT_PCT = 5.0


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` now (MiB), from ``/proc``."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def disk_mib(*folders: Path) -> float:
    """MiB of every file under ``folders`` (as the app's disk budget counts them)."""
    return sum(folder_bytes(folder) for folder in folders) / 2**20


def app_memory(url: str, pid: int, image: Path, requests: int, warmup: int,
               folders: list[Path], budget_mib: float | None = None) -> dict:
    """``warmup`` then ``requests`` /explain calls on EfficientNet-Lite0; the server's RSS and
    disk after each phase (every run's files written first) and at every request."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=False)
    runs: list[str] = []

    def explain(i: int) -> None:
        out = client.predict(image=handle_file(str(image)), model="efficientnet_lite0",
                             api_name="/explain")
        runs.append(out[3]["run"])
        if i % 2 == 0:  # the files now; the other runs' after the idle timer
            sheet, archive, _raw = client.predict(out[3], api_name="/files")
            assert Path(sheet["path"]).stat().st_size > 0, sheet
            assert Path(archive["path"]).stat().st_size > 0, archive

    def settle() -> None:  # every idle timer fired, every build done
        time.sleep(1.5)
        for run in runs[-4:]:
            client.predict({"run": run}, api_name="/files")

    for i in range(warmup):
        explain(i)
    settle()
    start, disk_start = rss_mib(pid), disk_mib(*folders)
    samples, disks = [], []
    t = time.perf_counter()
    for i in range(requests):
        explain(i)
        samples.append(rss_mib(pid))
        disks.append(disk_mib(*folders))
    seconds = time.perf_counter() - t
    settle()
    end, disk_end = rss_mib(pid), disk_mib(*folders)
    growth = (end - start) / start * 100
    return {
        "requests": requests, "warmup": warmup, "files_asked_for": (requests + 1) // 2,
        "seconds": round(seconds, 1),
        "rss_after_warmup_mib": round(start, 1), "rss_end_mib": round(end, 1),
        "rss_max_mib": round(max(samples + [end]), 1), "rss_growth_pct": round(growth, 2),
        "rss_mib": [round(v, 1) for v in samples],
        "disk_after_warmup_mib": round(disk_start, 1), "disk_end_mib": round(disk_end, 1),
        "disk_max_mib": round(max(disks + [disk_end]), 1), "disk_budget_mib": budget_mib,
        "within_5pct": bool(growth <= GROWTH_LIMIT_PCT),
        "disk_within_budget": None if budget_mib is None else bool(
            max(disks + [disk_end]) <= budget_mib * 1.05),
    }


def markdown(m: dict) -> str:
    """One sentence for the README."""
    verdict = "within" if m["within_5pct"] else "NOT within"
    budget = "" if m["disk_budget_mib"] is None else (
        f" under a disk budget of {m['disk_budget_mib']:.0f} MiB")
    return (f"App memory: {m['requests']} `/explain` requests after {m['warmup']} warm-up "
            f"ones (EfficientNet-Lite0, {m['files_asked_for']} with `/files` at once, the "
            f"others built by the idle timer): server RSS {m['rss_after_warmup_mib']:.0f} → "
            f"{m['rss_end_mib']:.0f} MiB ({m['rss_growth_pct']:+.1f} %, {verdict} 5 %; at most "
            f"{m['rss_max_mib']:.0f}); run folders and uploads {m['disk_after_warmup_mib']:.0f}"
            f" → {m['disk_end_mib']:.0f} MiB (at most {m['disk_max_mib']:.0f}){budget}.\n")
