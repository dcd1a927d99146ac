"""Offline guarantee: with networking disabled, every command works with a local backbone and local
data, and no connection is even attempted."""

import os
import subprocess
import sys

import numpy as np

BLOCKER = '''
import os, socket
LOG = os.environ["LIMSSR_NET_LOG"]
def _refuse(*args, **kwargs):
    with open(LOG, "a") as fh:
        fh.write(repr(args[1:3]) + "\\n")
    raise OSError("network disabled by limssr's offline test")
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
'''


def test_every_command_runs_without_network(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    log = tmp_path / "attempts.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(PYTHONPATH=str(site), LIMSSR_NET_LOG=str(log))
    np.savez(tmp_path / "one.npz", flow=np.zeros((6, 80), np.float32))

    def limssr(*args):
        proc = subprocess.run([sys.executable, "-m", "limssr.cli", *args], env=env, capture_output=True, text=True,
                              timeout=600, cwd=tmp_path)
        assert proc.returncode in (0, 1), proc.stderr[-2000:]
        return proc

    limssr("data", "synth", "--layout", "rg", "--small", str(tmp_path / "rg"))
    limssr("data", "check", str(tmp_path / "rg"))
    limssr("data", "convert", str(tmp_path / "rg"), str(tmp_path / "rg-safe"))
    limssr("train", "--preset", "synthetic-quick", "--epochs", "1", "--out", str(tmp_path / "run"))
    limssr("evaluate", str(tmp_path / "run"))
    limssr("predict", str(tmp_path / "run"), str(tmp_path / "one.npz"))
    limssr("train", "--preset", "rg-ball", "--data", str(tmp_path / "rg-safe"), "--backbone", "tiny", "--epochs", "1",
           "--out", str(tmp_path / "rg-run"), "data.clip_num=8")
    # the real default backbone: located, verified (sha256), converted or read from the cache, run
    code = ("from limssr.backbone import load_backbone; from limssr.config import LoraSettings; import torch; "
            "b = load_backbone('default', LoraSettings()); "
            "print(b.decoder(inputs_embeds=torch.zeros(1, 3, b.hidden_size)).last_hidden_state.shape)")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "576" in proc.stdout
    assert (tmp_path / "run" / "eval" / "results.json").is_file() and (tmp_path / "rg-run" / "model.safetensors").is_file()
    assert not log.exists(), f"network attempts: {log.read_text()}"
