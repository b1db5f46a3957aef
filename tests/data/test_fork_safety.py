"""Decoding in forked DataLoader workers after the parent decoded: must not deadlock.

Regression: a swscale context with slice threads cached in the parent hung the forked worker
(in use and when freed). The test runs in a subprocess with a timeout so a hang fails fast.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent("""
    import os, sys, tempfile
    import numpy as np, torch
    sys.path.insert(0, {root!r})
    from mvit_tasks.data.video_io import read_clip, write_video
    path = os.path.join(tempfile.mkdtemp(), "a.mp4")
    write_video(path, np.random.default_rng(0).integers(0, 255, (16, 96, 128, 3), dtype=np.uint8))
    parent = read_clip(path, 8, 1)  # the parent caches its converter first

    class Clips(torch.utils.data.Dataset):
        def __len__(self):
            return 4
        def __getitem__(self, i):
            return read_clip(path, 8, 1)

    loader = torch.utils.data.DataLoader(Clips(), batch_size=2, num_workers=2,
                                         multiprocessing_context="fork")
    for batch in loader:
        assert torch.equal(batch[0], parent)
    print("ok")
""")


def test_forked_workers_decode_after_the_parent_did(tmp_path):
    script = tmp_path / "fork_decode.py"
    script.write_text(SCRIPT.format(root=ROOT))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
