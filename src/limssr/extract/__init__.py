"""From raw video to per-clip features: decoding (PyAV), the extractor registry (Video Swin, AST,
RAFT + I3D) and `extract_videos`, which writes the generic data layout that training and
`limssr predict` read. Needs the `video` extra (PyAV and torchvision)."""
