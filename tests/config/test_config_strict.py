"""Config edges: keys given twice in a YAML file, list lengths and element kinds."""
from __future__ import annotations

import pytest

from mvit_tasks.config import ConfigError, ConfigTypeError, load_config


def _write(tmp_path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_a_key_given_twice_names_the_key_the_file_and_both_lines(tmp_path):
    path = _write(tmp_path, "twice.yaml", "DATA:\n  NUM_FRAMES: 8\n  NUM_FRAMES: 16\nSEED: 1\n")
    with pytest.raises(ConfigError, match=r"twice\.yaml': key 'NUM_FRAMES' is given twice "
                                          r"\(lines 2 and 3\)"):
        load_config(path)
    top = _write(tmp_path, "top.yaml", "SEED: 1\nDATA: {NUM_FRAMES: 8}\nSEED: 2\n")
    with pytest.raises(ConfigError, match=r"key 'SEED' is given twice \(lines 1 and 3\)"):
        load_config(top)
    ok = _write(tmp_path, "ok.yaml", "DATA:\n  NUM_FRAMES: 8\nMODEL:\n  NUM_CLASSES: 3\n")
    assert load_config(ok).DATA.NUM_FRAMES == 8


@pytest.mark.parametrize("value,message", [
    ("[0.5]", r"DATA\.MEAN' given on the command line \(opts\): expected a list of 3 values, "
              r"got 1"),
    ("[0.5, 'x', 0.5]", r"item 1 \('x'\) .* \(numbers\)"),
    ("[0.5, True, 0.5]", r"item 1 \(True\)"),
])
def test_list_keys_are_checked_for_length_and_kind(value, message):
    with pytest.raises(ConfigTypeError, match=message):
        load_config(None, ["DATA.MEAN", value])
    assert load_config(None, ["DATA.MEAN", "[0, 0.5, 1]"]).DATA.MEAN == [0, 0.5, 1]


def test_list_length_errors_name_the_file(tmp_path):
    path = _write(tmp_path, "mean.yaml", "DATA:\n  STD: [0.2, 0.2]\n")
    with pytest.raises(ConfigTypeError, match=r"DATA\.STD' in file '.*mean\.yaml': expected a "
                                              r"list of 3 values, got 2"):
        load_config(path)
