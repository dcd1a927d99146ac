"""`limssr extract` and `limssr predict` on video: small randomly initialised extractors (no network,
no weights) on short videos written here with PyAV, one with an audio track and one without."""

import json

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("av")
pytest.importorskip("torchvision")

from limssr.cli import main, run  # noqa: E402
from limssr.extract import decode  # noqa: E402
from limssr.extract import extractors as ex  # noqa: E402
from limssr.extract.i3d import I3D  # noqa: E402
from limssr.extract.pipeline import Plan, extract_videos  # noqa: E402
from limssr.extract.synth import write_video  # noqa: E402

GRID = decode.Grid(fps=8, clip=4, resize=146, crop=128)
SMALL = ["--small", "--fps", "8", "--clip", "4", "--crop", "128", "--batch", "2"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    write_video(root / "with_audio.mp4", seed=1)
    write_video(root / "silent.mp4", audio=False, seed=2)
    (root / "broken.mp4").write_bytes(b"not a video at all" * 50)
    return root


@pytest.fixture(scope="module")
def extracted(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("x") / "feats"
    record = extract_videos([videos], out, Plan(small=True, grid=GRID, batch=2), show=False)
    return out, record


def test_decoding_follows_one_time_grid(videos):
    frames = list(decode.frames(videos / "with_audio.mp4", GRID))
    assert len(frames) == 16 and frames[0].shape == (128, 128, 3) and frames[0].dtype == np.uint8  # 2 s at 8 fps
    clips = list(decode.clips(videos / "with_audio.mp4", decode.Grid(fps=8, clip=5, resize=146, crop=128)))
    assert len(clips) == 4 and np.array_equal(clips[-1][1], clips[-1][-1])  # 16 = 3*5 + 1: last padded
    wave = decode.audio(videos / "with_audio.mp4")
    assert wave.dtype == np.float32 and abs(len(wave) / decode.SAMPLE_RATE - 2.0) < 0.15
    assert 0.2 < np.abs(wave).max() < 0.4
    pieces = decode.audio_clips(wave, 4, GRID)
    assert [len(p) for p in pieces] == [8000] * 4  # 0.5 s of 16 kHz per clip
    assert decode.audio(videos / "silent.mp4") is None


def test_features_shapes_dims_and_natural_missingness(extracted):
    out, record = extracted
    manifest = yaml.safe_load((out / "limssr-data.yaml").read_text())
    assert manifest["modalities"] == ["video", "audio", "flow"]
    arrays = {m: np.load(out / "features" / m / "with_audio.npy") for m in ("video", "audio", "flow")}
    assert {m: a.shape for m, a in arrays.items()} == {"video": (4, 16), "audio": (4, 16), "flow": (4, 128)}
    assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in arrays.values())
    assert not (out / "features" / "audio" / "silent.npy").exists()
    assert np.load(out / "features" / "video" / "silent.npy").shape[0] == np.load(
        out / "features" / "flow" / "silent.npy").shape[0] == 4
    assert record["videos"]["silent"]["modalities"] == ["video", "flow"] and record["videos"]["silent"]["no_audio_track"]
    assert "broken" in record["failed"] and "broken.mp4" in record["failed"]["broken"]
    saved = json.loads((out / "extract.json").read_text())
    assert saved["settings"]["grid"] == {"fps": 8.0, "clip": 4, "resize": 146, "crop": 128}
    assert saved["extractors"]["flow"] == {"name": "raft_small+i3d", "dim": 128,
                                           "weights_from": ex.entry("raft_small+i3d").weights_from}
    assert {"torch", "torchvision", "av", "transformers"} <= set(saved["libraries"])


def test_extraction_is_deterministic_and_resumes(videos, extracted, tmp_path):
    out, _ = extracted
    again = tmp_path / "again"
    extract_videos([videos / "with_audio.mp4"], again, Plan(small=True, grid=GRID, batch=3), show=False)
    for m in ("video", "audio", "flow"):  # another batch size, another process state: the same features
        np.testing.assert_allclose(np.load(again / "features" / m / "with_audio.npy"),
                                   np.load(out / "features" / m / "with_audio.npy"), rtol=1e-4, atol=1e-5)
    target = again / "features" / "video" / "with_audio.npy"
    before = target.stat().st_mtime_ns
    record = extract_videos([videos / "with_audio.mp4", videos / "silent.mp4"], again,
                            Plan(small=True, grid=GRID, batch=3), show=False)
    assert target.stat().st_mtime_ns == before and set(record["videos"]) == {"with_audio", "silent"}
    with pytest.raises(decode.ExtractError, match=r"other settings \(grid.fps"):
        extract_videos([videos / "silent.mp4"], again, Plan(small=True, grid=decode.Grid(fps=5, clip=4, resize=146,
                                                                                        crop=128)), show=False)


def test_i3d_follows_the_distributed_layout(tmp_path):
    model = I3D(in_channels=2)
    assert model.dim == 1024 and sum(p.numel() for p in model.parameters()) == 12_675_312
    names = set(model.state_dict())
    assert {"Conv3d_1a_7x7.conv3d.weight", "Mixed_4f.b1b.bn.running_var", "Mixed_5c.b3b.conv3d.weight",
            "logits.conv3d.bias"} <= names and "logits.bn.weight" not in names
    path = tmp_path / "flow_imagenet.pt"
    torch.save({k: torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else v
                for k, v in model.state_dict().items()}, path)
    loaded = ex.load_state(I3D(in_channels=2), path, "I3D flow")
    x = torch.randn(1, 2, 8, 64, 64)
    with torch.no_grad():
        assert loaded.eval().features(x).shape == (1, 1024)
    torch.save({"something": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(decode.ExtractError, match="other.pt: not I3D flow weights"):
        ex.load_state(I3D(in_channels=2), tmp_path / "other.pt", "I3D flow")


@pytest.mark.parametrize("extra,message", [
    (["--extractors", "video=ast", "--small"], "'ast' extracts audio, not video"),
    (["--extractors", "video=swin3d_b"], "no weights for video (swin3d_b): pass --weights video=PATH"),
    (["--weights", "video=/nope.pth"], "--weights: '/nope.pth' does not exist"),
    (["--extractors", "video=swin3d_b", "--weights", "video=download"], "needs --allow-download"),
    (["--extractors", "flow=raft_small+i3d", "--small", "--crop", "64"], "RAFT optical flow needs frames of at least 128"),
    (["--extractors", "video=vit"], "unknown extractor 'vit'"),
])
def test_cli_errors_name_the_problem(videos, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exc:
        main(["extract", str(videos / "silent.mp4"), str(tmp_path / "o"), *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "features").exists()


def test_extract_train_predict_end_to_end(tmp_path, capsys):
    vids = tmp_path / "videos"
    vids.mkdir()
    for i in range(8):
        write_video(vids / f"p{i}.mp4", seconds=2.0, audio=i % 3 != 0, seed=10 + i)
    data = tmp_path / "data"
    assert run(["extract", str(vids), str(data), *SMALL]) == 0
    manifest = data / "limssr-data.yaml"
    manifest.write_text(manifest.read_text() + "score_range: 10\n")
    (data / "train.csv").write_text("name,score\n" + "".join(f"p{i},{i + 1}\n" for i in range(6)))
    (data / "test.csv").write_text("name,score\np6,3\np7,8\n")
    out = tmp_path / "run"
    assert run(["train", "--preset", "synthetic-quick", "--data", str(data), "--backbone", "tiny", "--epochs", "1",
                "--out", str(out), "data.source=generic", "data.clip_num=4", "train.selection=last"]) == 0
    assert (out / "extract.json").is_file()
    capsys.readouterr()
    assert run(["predict", str(out), str(vids / "p0.mp4")]) == 0
    text = capsys.readouterr().out
    assert "p0," in text and "video+flow" in text and "scored 1 video(s)" in text
    rows = (out / "predictions" / "p0.csv").read_text().splitlines()
    assert rows[0].startswith("name,score,lo,hi,present,missing") and rows[1].split(",")[5] == "audio"


@pytest.mark.parametrize("name", sorted(ex.describe()))
def test_every_registered_extractor_gives_its_dim(name):
    """Each extractor at full size (random weights) and small: one feature of the registry's dim per clip."""
    spec = ex.entry(name)
    rng = np.random.default_rng(0)
    for small in (False, True):
        model = ex.build(name, "random", small=small, seed=1)
        with torch.no_grad():
            if model.input == "audio":
                out = model([rng.standard_normal(8000).astype(np.float32) * 0.1] * 2)
            else:
                out = model(torch.from_numpy(rng.integers(0, 256, (2, 4, 128, 128, 3), dtype=np.uint8)))
        assert out.shape[0] == 2 and torch.isfinite(out).all()
        if not small:
            assert out.shape[1] == spec.dim
