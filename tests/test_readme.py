"""README stays true: the model-zoo table is the generated one, the quick start is what CI runs."""
import os

from mvit_tasks.modeling.backbone.zoo_table import model_zoo_markdown

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts: str) -> str:
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def test_model_zoo_table_is_current():
    assert model_zoo_markdown() in _read("README.md"), "run: python tools/model_zoo.py and paste it"


def test_quick_start_commands_match_ci_and_makefile():
    readme, ci, make = _read("README.md"), _read(".ci", "run"), _read("Makefile")
    last = [ln for ln in ci.splitlines() if ln.strip() and not ln.startswith("#")][-1].strip()
    assert last == "make test"
    assert "make demo" in readme and "make test" in readme
    assert "\ndemo:" in make and "\ntest:" in make


def test_no_placeholders_left():
    assert "PLACEHOLDER" not in _read("README.md")
