"""Every JSON the project writes is strict: NaN / inf become null."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mvit_tasks.utils.fileio import dumps_json, write_json


def _strict_load(text: str):
    def refuse(const: str):
        raise AssertionError(f"non-standard JSON constant {const}")

    return json.loads(text, parse_constant=refuse)


def test_nan_and_inf_become_null_and_scalars_plain(tmp_path):
    obj = {"APl": float("nan"), "x": [1.0, float("inf"), -math.inf], "t": torch.tensor(2.5),
           "n": np.float32(0.5), "a": np.arange(3), "nested": ({"k": np.nan},)}
    assert _strict_load(dumps_json(obj)) == {"APl": None, "x": [1.0, None, None], "t": 2.5,
                                             "n": 0.5, "a": [0, 1, 2], "nested": [{"k": None}]}
    path = tmp_path / "r.json"
    write_json(str(path), obj)
    assert _strict_load(path.read_text())["APl"] is None
    with pytest.raises(TypeError):
        dumps_json({"bad": object()})
