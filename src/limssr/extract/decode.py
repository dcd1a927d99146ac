"""Decoding with PyAV (its wheels carry their own FFmpeg): frames resampled to a fixed frame rate
and cropped, and the audio track as 16 kHz mono.

The time grid: frame k shows the video at k / fps seconds (the last source frame at or before that
time); clip i is frames [i * clip, (i + 1) * clip), so it covers the seconds
[i * clip / fps, (i + 1) * clip / fps) in every modality. The last clip, if short, repeats its final
frame; its audio past the end of the track is silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv")
SAMPLE_RATE = 16000


class ExtractError(Exception):
    """Bad input or settings for feature extraction; the message names the file, key or value and the fix."""


class DecodeError(ExtractError):
    """A video file that cannot be decoded; the message names the file."""


@dataclass(frozen=True)
class Grid:
    """How frames are sampled and shaped: fps, frames per clip, short side after resizing, centre crop."""

    fps: float = 25.0
    clip: int = 32
    resize: int = 256
    crop: int = 224

    def clip_seconds(self) -> float:
        return self.clip / self.fps


def _open(path: Path):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise DecodeError(f"{path}: cannot be opened as a video ({err})") from None


def has_audio(path: Path) -> bool:
    with _open(path) as container:
        return bool(container.streams.audio)


def _to_rgb(frame, grid: Grid) -> np.ndarray:
    """Short side resized to grid.resize (bilinear), then the centre grid.crop square: (crop, crop, 3) uint8."""
    w, h = frame.width, frame.height
    scale = grid.resize / min(w, h)
    nw, nh = max(grid.crop, round(w * scale)), max(grid.crop, round(h * scale))
    img = frame.to_ndarray(format="rgb24", width=nw, height=nh, interpolation="BILINEAR")
    top, left = (nh - grid.crop) // 2, (nw - grid.crop) // 2
    return img[top:top + grid.crop, left:left + grid.crop]


def frames(path: Path, grid: Grid) -> Iterator[np.ndarray]:
    """The video's frames at grid.fps, each (crop, crop, 3) uint8."""
    import av

    container = _open(path)
    with container:
        if not container.streams.video:
            raise DecodeError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or grid.fps)
        k, prev, prev_rgb, last_time = 0, None, None, 0.0
        try:
            for j, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else j / rate
                if prev is None:
                    start, prev = t, frame  # the first frame is shown from time 0
                    continue
                while k / grid.fps < t - start:
                    prev_rgb = prev_rgb if prev_rgb is not None else _to_rgb(prev, grid)
                    yield prev_rgb
                    k += 1
                prev, prev_rgb, last_time = frame, None, t - start
        except av.error.FFmpegError as err:
            raise DecodeError(f"{path}: decoding failed after {k} frames ({err})") from None
        if prev is None:
            raise DecodeError(f"{path}: the video stream holds no frame")
        end = last_time + 1.0 / rate
        while k / grid.fps < end - 1e-9:
            prev_rgb = prev_rgb if prev_rgb is not None else _to_rgb(prev, grid)
            yield prev_rgb
            k += 1


def clips(path: Path, grid: Grid) -> Iterator[np.ndarray]:
    """Clips of grid.clip frames, (clip, crop, crop, 3) uint8; the last one padded with its final frame."""
    buf: list[np.ndarray] = []
    for img in frames(path, grid):
        buf.append(img)
        if len(buf) == grid.clip:
            yield np.stack(buf)
            buf = []
    if buf:
        buf += [buf[-1]] * (grid.clip - len(buf))
        yield np.stack(buf)


def audio(path: Path) -> np.ndarray | None:
    """The first audio track as float32 mono at 16 kHz, or None when the file has none."""
    import av

    container = _open(path)
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        parts = []
        try:
            for frame in container.decode(stream):
                parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
        except av.error.FFmpegError as err:
            raise DecodeError(f"{path}: audio decoding failed ({err})") from None
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def audio_clips(wave: np.ndarray, n_clips: int, grid: Grid) -> list[np.ndarray]:
    """The audio of each clip's seconds; silence past the end of the track."""
    step = grid.clip_seconds() * SAMPLE_RATE
    out = []
    for i in range(n_clips):
        a, b = round(i * step), round((i + 1) * step)
        seg = wave[a:b]
        out.append(np.pad(seg, (0, (b - a) - len(seg))) if len(seg) < b - a else seg)
    return out
