"""`python -m keras_transfer.compare`: a table of runs, a bar chart, and a
clear error for a folder that is not a finished run."""

import os

import pytest
from absl.testing import flagsaver

from conftest import run_python
from keras_transfer import outputs, schema
from keras_transfer.cli import compare as compare_cli
from test_report import assert_real_png


def _compare(*folders, output):
    """The command's `main`, as `python -m keras_transfer.compare` runs it."""
    compare_cli.define_flags()
    with flagsaver.flagsaver(output=str(output)):
        compare_cli.main(["compare", *folders])


def _run_folder(root, name, model, accuracy, exported_phase="fine_tune"):
    folder = root / name
    folder.mkdir()
    outputs.write_json(str(folder / schema.METRICS_FILE), {
        "config": {"model": model},
        "weights": {"kind": "source"},
        "phases": {"feature_extraction": {}, "fine_tune": {}},
        "safety_net": {"exported_phase": exported_phase},
        "test": {"accuracy": accuracy, "f1": accuracy - 0.02, "auc": 0.99},
        "timings": {"total": 123.4},
    })
    return str(folder)


def test_table_and_bar_chart(tmp_path, capsys):
    folders = [_run_folder(tmp_path, "vgg", "vgg16", 0.978),
               _run_folder(tmp_path, "resnet", "resnet50", 0.966, "feature_extraction")]
    chart = str(tmp_path / "chart.png")
    _compare(*folders, output=chart)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "backbone", "weights", "exported", "phase", "test",
                                "accuracy", "macro", "F1", "ROC", "AUC", "total", "s"]
    assert lines[2].split() == ["vgg", "vgg16", "source", "fine_tune", "0.9780", "0.9580",
                                "0.9900", "123"]
    assert lines[3].split()[:4] == ["resnet", "resnet50", "source", "feature_extraction"]
    assert_real_png(chart)


def test_folder_without_metrics_is_a_clear_error(tmp_path):
    good = _run_folder(tmp_path, "good", "vgg16", 0.9)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as raised:
        _compare(good, str(tmp_path / "empty"), output=tmp_path / "c.png")
    assert "has no metrics.json" in str(raised.value)
    assert f"Received: {str(tmp_path / 'empty')!r}" in str(raised.value)
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("problem, says", [
    ("truncated", "metrics.json is not valid JSON"),
    ("not_png", "output must be a .png file"),
    ("no_folder", "output must be in an existing folder"),
])
def test_bad_inputs_are_one_line(tmp_path, problem, says):
    good = _run_folder(tmp_path, "good", "vgg16", 0.9)
    output = {"not_png": tmp_path / "c.txt",
              "no_folder": tmp_path / "missing" / "c.png"}.get(problem, tmp_path / "c.png")
    if problem == "truncated":
        path = os.path.join(good, schema.METRICS_FILE)
        with open(path) as handle:
            text = handle.read()
        with open(path, "w") as handle:
            handle.write(text[:40])
    with pytest.raises(SystemExit) as raised:
        _compare(good, output=output)
    assert says in str(raised.value)


def test_module_entry_point(tmp_path):
    folder = _run_folder(tmp_path, "run", "mobilenet_v2", 0.5)
    chart = tmp_path / "out.png"
    result = run_python(["-m", "keras_transfer.compare", folder, f"--output={chart}"])
    assert result.returncode == 0, result.stderr
    assert "mobilenet_v2" in result.stdout and os.path.getsize(chart) > 0
