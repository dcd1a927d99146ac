"""The software and machine a run was made with: env.json in a run directory, `env` in results.json.

Standard library only. Versions are read from the installed packages' metadata, so nothing is
imported to learn them; the device is described only when torch is imported already (a run has
imported it; `import limssr.environment` alone never does).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

PACKAGES = ("limssr", "torch", "transformers", "peft", "lightning", "safetensors", "numpy")
OPTIONAL_PACKAGES = ("torchvision", "av")  # the video extra: recorded when installed
GIT_TIMEOUT_S = 5.0


def package_version(name: str) -> str | None:
    """The installed version of distribution `name`, None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(directory: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=GIT_TIMEOUT_S,
                          check=True).stdout.strip()


def git_state(package_dir: Path | None = None) -> dict:
    """{'commit', 'dirty'} of the git checkout the limssr source is in, both None when it is in none
    (an installed wheel), when git is missing or slow. Only a checkout whose src/limssr is this
    package counts: a site-packages inside some other repository has no limssr commit. `dirty`: the
    working tree differs from the commit (untracked files that git does not ignore included)."""
    package_dir = (package_dir or Path(__file__).resolve().parent).resolve()
    try:
        top = Path(_git(package_dir, "rev-parse", "--show-toplevel")).resolve()
        if top / "src" / "limssr" != package_dir:
            return {"commit": None, "dirty": None}
        commit = _git(package_dir, "rev-parse", "HEAD")
    except (OSError, ValueError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    try:
        dirty = bool(_git(top, "status", "--porcelain"))
    except (OSError, ValueError, subprocess.SubprocessError):
        dirty = None
    return {"commit": commit or None, "dirty": dirty}


def device_info() -> dict | None:
    """CUDA availability and device name, from an already imported torch; None when torch is not
    imported (it is never imported here)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        cuda = bool(torch.cuda.is_available())
        return {"cuda_available": cuda,
                "cuda_device": torch.cuda.get_device_name(0) if cuda else None,
                "cuda_device_count": torch.cuda.device_count() if cuda else 0,
                "cuda_version": getattr(torch.version, "cuda", None),
                "torch_threads": torch.get_num_threads()}
    except Exception as err:  # a broken driver must not stop a run from being recorded
        return {"cuda_available": None, "error": f"{type(err).__name__}: {err}"}


def _usable_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def environment() -> dict:
    """Python, platform, CPUs, the versions of limssr and its main libraries, the git commit of the
    limssr source and the device, as one JSON-ready dict."""
    packages = {name: package_version(name) for name in PACKAGES}
    packages.update({name: v for name in OPTIONAL_PACKAGES if (v := package_version(name)) is not None})
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": _usable_cpus(),
        "packages": packages,
        "git": git_state(),
        "device": device_info(),
    }
