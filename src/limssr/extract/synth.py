"""Synthetic video files written with PyAV, for tests, smoke runs and timing: random frames and,
optionally, a 440 Hz tone as the audio track."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_video(path: str | Path, seconds: float = 2.0, fps: int = 10, audio: bool = True, seed: int = 0,
                size: tuple[int, int] = (176, 144)) -> Path:
    """An MPEG-4 file of random frames (width, height = size), with a mono AAC tone when `audio`."""
    import av

    rng = np.random.default_rng(seed)
    path = Path(path)
    with av.open(str(path), "w") as c:
        v = c.add_stream("mpeg4", rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], "yuv420p"
        a = c.add_stream("aac", rate=22050) if audio else None
        if a is not None:
            a.layout = "mono"
        for _ in range(int(seconds * fps)):
            img = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
            for p in v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
        if a is not None:
            t = np.arange(int(seconds * 22050)) / 22050
            frame = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                               format="flt", layout="mono")
            frame.sample_rate = 22050
            for p in list(a.encode(frame)) + list(a.encode()):
                c.mux(p)
    return path
