"""`limssr extract`: videos in, the generic data layout out (`limssr-data.yaml`,
`features/<modality>/<name>.npy` of shape (T, D)), plus `extract.json`, which records the
extractors, their weight files (sha256), the time grid, the library versions and every video done.

Resumable: a rerun with the same settings skips the videos already done; other settings are
refused, naming the keys that differ. A video is written only when all its modalities are
computed (each file atomically), so an interrupted one is simply redone. A file that cannot be
decoded is reported by name, recorded under `failed` and skipped. A video without an audio track
gets no audio file: that modality is naturally missing for it.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from limssr.atomic import atomic_write_text, file_sha256, temp_sibling
from limssr.data.generic import MANIFEST
from limssr.extract import decode
from limssr.extract import extractors as ex
from limssr.extract.decode import ExtractError

RECORD = "extract.json"
FORMAT = "limssr-extract/1"


@dataclass
class Plan:
    """What to extract and how: modality -> extractor name, modality -> weights, and the time grid."""

    extractors: dict[str, str] = field(default_factory=lambda: dict(ex.DEFAULT))
    weights: dict[str, str] = field(default_factory=dict)  # modality -> path | "random" | "download"
    grid: decode.Grid = field(default_factory=decode.Grid)
    small: bool = False  # the small test variants
    device: str = "auto"
    batch: int = 4
    allow_download: bool = False
    seed: int = 0

    def settings(self) -> dict:
        """What the features depend on (compared on resume); weight files by content, not by path."""
        mods = {}
        for m, name in self.extractors.items():
            w = self.weights.get(m)
            mods[m] = {"extractor": name, "weights": [_weight_id(p) for p in str(w).split(",")] if w else None,
                       "small": self.small}
            if w == "random" or self.small:
                mods[m]["seed"] = self.seed
        return {"grid": asdict(self.grid), "modalities": mods}


def _weight_id(w: str) -> dict | str:
    if w in ("random", "download"):
        return w
    path = Path(w)
    if not path.exists():
        raise ExtractError(f"--weights: '{w}' does not exist")
    if path.is_dir():  # a Hugging Face directory: its weight files
        files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".json"))
        return {"dir": str(path.resolve()), "sha256": {p.name: file_sha256(p) for p in files}}
    return {"file": str(path.resolve()), "sha256": file_sha256(path)}


def parse_assignments(text: str | None, what: str) -> dict[str, str]:
    """`video=swin3d_b,audio=ast` -> {"video": "swin3d_b", "audio": "ast"}."""
    out: dict[str, str] = {}
    for item in _split_items(text or ""):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ExtractError(f"{what}: '{item}' is not MODALITY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _split_items(text: str) -> list[str]:
    # commas separate items, but a flow weight is `RAFT_FILE,I3D_FILE`: a part without '=' joins the previous
    items: list[str] = []
    for part in [p for p in text.split(",") if p.strip()]:
        if "=" in part or not items:
            items.append(part)
        else:
            items[-1] += "," + part
    return items


def find_videos(inputs: list[str | Path]) -> dict[str, Path]:
    """name (file stem) -> path, for video files and directories of them; duplicate names refused."""
    found: dict[str, Path] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in decode.VIDEO_SUFFIXES and p.is_file())
            if not files:
                raise ExtractError(f"{path}: no video files ({', '.join(decode.VIDEO_SUFFIXES)})")
        elif path.is_file():
            files = [path]
        else:
            raise ExtractError(f"input '{path}' does not exist")
        for f in files:
            if f.stem in found and found[f.stem] != f:
                raise ExtractError(f"two videos are both named '{f.stem}': {found[f.stem]} and {f}; rename one")
            found[f.stem] = f
    return found


def _device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def _versions() -> dict:
    import av
    import torch
    import transformers

    out = {"python": platform.python_version(), "torch": torch.__version__, "av": av.__version__,
           "transformers": transformers.__version__, "numpy": np.__version__}
    try:
        out["torchvision"] = ex.torchvision().__version__
    except ImportError:
        pass
    return out


def _read_record(out: Path) -> dict | None:
    path = out / RECORD
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExtractError(f"{path}: not valid JSON ({err}); move it away to start afresh") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ExtractError(f"{path}: not a limssr extract record (format {FORMAT})")
    return record


def _differences(a, b, prefix="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [prefix.rstrip(".")] if a != b else []


def _save_npy(path: Path, arr: np.ndarray) -> None:
    tmp = temp_sibling(path, ".npy")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Extraction:
    """The built extractors of a plan, and the scoring of one video."""

    def __init__(self, plan: Plan):
        for m, name in plan.extractors.items():
            spec = ex.entry(name)
            if spec.modality != m:
                raise ExtractError(f"--extractors {m}={name}: '{name}' extracts {spec.modality}, not {m}")
            weights = plan.weights.get(m)
            if weights is None and not plan.small:
                raise ExtractError(f"no weights for {m} ({name}): pass --weights {m}=PATH "
                                   f"(see `limssr extract --list`), {m}=random, or {m}=download with --allow-download")
            if weights == "download" and not plan.allow_download:
                raise ExtractError(f"--weights {m}=download needs --allow-download (limssr is offline by default)")
        if any(n.startswith("raft") for n in plan.extractors.values()) and plan.grid.crop < 128:
            raise ExtractError(f"--crop {plan.grid.crop}: RAFT optical flow needs frames of at least 128 pixels")
        self.plan = plan
        self.device = _device(plan.device)
        self._models: dict | None = None

    @property
    def models(self) -> dict:
        """modality -> extractor, built on first use."""
        if self._models is None:
            p = self.plan
            self._models = {m: ex.build(name, p.weights.get(m, "random"), small=p.small, device=self.device,
                                        seed=p.seed) for m, name in p.extractors.items()}
        return self._models

    def video(self, path: Path, progress=None) -> tuple[dict[str, np.ndarray], dict]:
        """modality -> (T, D) float32 for one video, and what was found (T, seconds, audio present)."""
        import torch

        grid, batch = self.plan.grid, self.plan.batch
        frame_models = {m: f for m, f in self.models.items() if f.input == "frames"}
        audio_model = next(((m, f) for m, f in self.models.items() if f.input == "audio"), None)
        wave = decode.audio(path) if audio_model else None
        outs: dict[str, list[np.ndarray]] = {m: [] for m in self.models}
        n_clips = 0

        def run(group):
            clips = torch.from_numpy(np.stack(group)).to(self.device)
            for m, f in frame_models.items():
                with torch.inference_mode():
                    outs[m].append(f(clips).float().cpu().numpy())
            if progress:
                progress(len(group))

        group: list[np.ndarray] = []
        for clip in decode.clips(path, grid):
            group.append(clip)
            n_clips += 1
            if len(group) == batch:
                run(group)
                group = []
        if group:
            run(group)
        if audio_model and wave is not None:
            m, f = audio_model
            pieces = decode.audio_clips(wave, n_clips, grid)
            for i in range(0, n_clips, batch):
                with torch.inference_mode():
                    outs[m].append(f(pieces[i:i + batch]).float().cpu().numpy())
        arrays = {m: np.concatenate(v).astype(np.float32) for m, v in outs.items() if v}
        info = {"file": str(path), "clips": n_clips, "seconds": round(n_clips * grid.clip_seconds(), 3),
                "modalities": sorted(arrays, key=list(self.models).index)}
        if audio_model and wave is None:
            info["no_audio_track"] = True
        return arrays, info


def extract_videos(inputs: list[str | Path], out: str | Path, plan: Plan | None = None, show: bool = True) -> dict:
    """Extract every video of `inputs` into the generic layout at `out`; returns the record."""
    plan = plan or Plan()
    out = Path(out)
    videos = find_videos(inputs)
    settings = plan.settings()
    record = _read_record(out)
    if record is not None:
        diff = _differences(record.get("settings"), settings)
        if diff:
            raise ExtractError(f"{out / RECORD}: extracted with other settings ({', '.join(diff)}); "
                               "use a new OUT directory or the same settings")
    elif out.exists() and any(out.iterdir()):
        raise ExtractError(f"'{out}' exists and is not a limssr extraction (no {RECORD}); choose a new OUT")
    else:
        record = {"format": FORMAT, "settings": settings, "videos": {}, "failed": {}}
    modalities = list(plan.extractors)
    manifest_path = out / MANIFEST
    if manifest_path.exists():
        manifest = yaml.safe_load(manifest_path.read_text(encoding="utf-8")) or {}
        if manifest.get("modalities") != modalities:
            raise ExtractError(f"{manifest_path}: modalities {manifest.get('modalities')} differ from {modalities}")
    todo = {n: p for n, p in videos.items() if n not in record["videos"]
            or not all((out / "features" / m / f"{n}.npy").is_file() for m in record["videos"][n]["modalities"])}
    extraction = Extraction(plan)
    record["extractors"] = {m: {"name": n, "dim": None, "weights_from": ex.entry(n).weights_from}
                            for m, n in plan.extractors.items()}
    record["libraries"] = _versions()
    record["device"] = extraction.device
    for m in modalities:
        (out / "features" / m).mkdir(parents=True, exist_ok=True)
    if not manifest_path.exists():
        atomic_write_text(manifest_path, yaml.safe_dump({"modalities": modalities}, sort_keys=False)
                          + "# add `score_range: <the largest possible score>` and train.csv / test.csv "
                            "(name,score) to train on these features\n")
    for info in record["videos"].values():
        for m, d in info["dims"].items():
            record["extractors"][m]["dim"] = d

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    done_now, started = 0, time.perf_counter()
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn()]
    with Progress(*columns, disable=not show, transient=True) as bar:
        task = bar.add_task("videos", total=len(todo), rate="")
        for name, path in todo.items():
            bar.update(task, description=f"{name}")
            t0, clips_seen = time.perf_counter(), [0]

            def tick(k, t0=t0, clips_seen=clips_seen):
                clips_seen[0] += k
                bar.update(task, rate=f"{clips_seen[0] / (time.perf_counter() - t0):.2f} clips/s")

            try:
                arrays, info = extraction.video(path, progress=tick)
            except decode.DecodeError as err:
                record["failed"][name] = str(err)
                atomic_write_text(out / RECORD, json.dumps(record, indent=1) + "\n")
                if show:
                    bar.console.print(f"[yellow]skipped[/] {err}")
                bar.advance(task)
                continue
            for m, arr in arrays.items():
                _save_npy(out / "features" / m / f"{name}.npy", arr)
                record["extractors"][m]["dim"] = int(arr.shape[1])
            info["dims"] = {m: int(a.shape[1]) for m, a in arrays.items()}
            info["wall_s"] = round(time.perf_counter() - t0, 2)
            record["videos"][name] = info
            record["failed"].pop(name, None)
            atomic_write_text(out / RECORD, json.dumps(record, indent=1) + "\n")
            done_now += 1
            bar.advance(task)
    if show:
        skipped = [n for n in todo if n in record["failed"]]
        print(f"extracted {done_now} video(s) into {out} in {time.perf_counter() - started:.1f} s"
              + (f"; {len(videos) - len(todo)} already done" if len(videos) > len(todo) else "")
              + (f"; skipped {len(skipped)} that could not be decoded: {', '.join(skipped)}" if skipped else ""))
    return record


def plan_from_record(record: dict, where: str) -> Plan:
    """The plan an extraction was made with (weight files checked against their recorded sha256)."""
    try:
        settings = record["settings"]
        grid = decode.Grid(**settings["grid"])
        extractors, weights, small, seed = {}, {}, False, 0
        for m, s in settings["modalities"].items():
            extractors[m] = s["extractor"]
            small = small or bool(s.get("small"))
            seed = int(s.get("seed", seed))
            if s.get("weights") is None:
                continue
            parts = []
            for w in s["weights"]:
                if isinstance(w, str):
                    parts.append(w)
                    continue
                path = Path(w.get("file") or w["dir"])
                if not path.exists():
                    raise ExtractError(f"{where}: the {m} weights {path} are gone; pass --weights {m}=PATH")
                if "file" in w and file_sha256(path) != w["sha256"]:
                    raise ExtractError(f"{where}: {path} changed since extraction (sha256 differs); "
                                       f"pass --weights {m}=PATH to use it anyway")
                parts.append(str(path))
            weights[m] = ",".join(parts)
    except (KeyError, TypeError) as err:
        raise ExtractError(f"{where}: not a complete extract record (missing {err})") from None
    return Plan(extractors=extractors, weights=weights, grid=grid, small=small, seed=seed)
