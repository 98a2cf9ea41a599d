"""The benchmark scripts' bookkeeping: resuming from the record of finished
runs, variants of our default, Kendall's tau, the marked block of RESULTS.md."""

import json
import os
import sys

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import main_runs  # noqa: E402
import table  # noqa: E402
import transfer_quality  # noqa: E402


def test_finished_runs_are_read_back_and_only_used_ones_are_reported(tmp_path):
    path = str(tmp_path / "runs.jsonl")
    first = transfer_quality.Results(path)
    first.add({"key": "run:a", "accuracy": 0.9})
    first.add({"key": "run:b", "accuracy": 0.8})
    again = transfer_quality.Results(path)
    assert again.get("run:a")["accuracy"] == 0.9 and again.get("run:c") is None
    assert [entry["key"] for entry in again.used] == ["run:a"]
    # A half-written last line (a stop mid-write) is not a result.
    with open(path, "a") as handle:
        handle.write('{"key": "run:c", "accu')
    resumed = transfer_quality.Results(path)
    assert resumed.get("run:b")["accuracy"] == 0.8 and resumed.get("run:c") is None
    resumed.add({"key": "run:c", "accuracy": 0.7})
    assert transfer_quality.Results(path).get("run:c")["accuracy"] == 0.7


def test_settings_key_ignores_where_files_go():
    from keras_transfer import config as config_lib

    key = transfer_quality.settings_key
    base = config_lib.RunConfig(output_dir="/a", cache_dir="/c")
    assert key(base) == key(config_lib.RunConfig(output_dir="/b"))
    assert key(base) != key(config_lib.RunConfig(fine_tune_epochs=7))


def test_settings_key_of_an_auto_cut_is_the_cut_it_resolves_to():
    # A new auto rule must not reuse runs recorded under the old one.
    from keras_transfer import config as config_lib
    from keras_transfer.models import backbones

    key = transfer_quality.settings_key
    vgg16 = backbones.get("vgg16")
    cut = backbones.resolve_base_layer(vgg16, "auto", "source", "both")
    assert key(config_lib.RunConfig()) == key(config_lib.RunConfig(base_layer=cut))
    head = backbones.resolve_base_layer(vgg16, "auto", "source", "feature_extraction")
    assert key(config_lib.RunConfig(phase="feature_extraction")) == key(
        config_lib.RunConfig(phase="feature_extraction", base_layer=head))
    assert key(config_lib.RunConfig()) != key(config_lib.RunConfig(base_layer="top"))
    # From scratch the whole network trains: auto is not resolved there.
    scratch = config_lib.RunConfig(phase="pretrain")
    assert key(scratch) != key(config_lib.RunConfig(phase="pretrain", base_layer="top"))


def test_variants_parse_to_typed_settings():
    variants = transfer_quality.parse_variants(
        "long:fine_tune_epochs=8+fine_tune_learning_rate=3e-4; cut:base_layer=block4+"
        "augment=rotation,zoom+baseline=true")
    assert variants == {
        "ours (long)": {"fine_tune_epochs": 8, "fine_tune_learning_rate": 3e-4},
        "ours (cut)": {"base_layer": "block4", "augment": ("rotation", "zoom"),
                       "baseline": True}}
    # Settings whose default is None are typed by their annotation.
    assert transfer_quality.parse_settings("batch_size=8+classes=5,6+image_size=40") == {
        "batch_size": 8, "classes": ("5", "6"), "image_size": 40}
    with pytest.raises(SystemExit, match="no setting 'epoch'"):
        transfer_quality.parse_variants("x:epoch=3")


def test_kendall_tau_of_orders():
    assert transfer_quality.kendall_tau([1, 2, 3], [0.5, 0.6, 0.7]) == pytest.approx(1.0)
    assert transfer_quality.kendall_tau([3, 2, 1], [0.5, 0.6, 0.7]) == pytest.approx(-1.0)
    assert transfer_quality.kendall_tau([1, 2, 3], [0.5, 0.5, 0.5]) is None


def test_the_top_pick_shortfall_is_what_the_estimators_favourite_gives_up():
    accuracies = [0.90, 0.95, 0.85]
    assert transfer_quality.top_pick_shortfall([1, 3, 2], accuracies) == 0.0
    assert transfer_quality.top_pick_shortfall([3, 1, 2], accuracies) == pytest.approx(0.05)
    assert transfer_quality.top_pick_shortfall([1, 2, 3], accuracies) == pytest.approx(0.10)


def test_a_lead_is_signed_and_an_exact_tie_is_not_negative():
    assert transfer_quality.signed(0.9575 - 0.9534) == "+0.004"
    assert transfer_quality.signed(0.812 - 0.898) == "-0.086"
    tie = 0.3 - (0.1 + 0.2)  # -5.6e-17: equal means, summed in another order.
    assert tie < 0
    assert transfer_quality.signed(tie) == "+0.000"


def test_the_marked_block_is_replaced_and_the_rest_kept(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Results\n\nhand-written reading\n")
    table.write_block(str(path), "<!-- b -->", "<!-- e -->", "first")
    table.write_block(str(path), "<!-- b -->", "<!-- e -->", "second")
    text = path.read_text()
    assert text == "# Results\n\n<!-- b -->\nsecond\n<!-- e -->\n\nhand-written reading\n"


def test_the_record_is_named_from_the_repository_or_in_full(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    record = os.path.join(REPO, "benchmarks", "transfer_quality.jsonl")
    assert transfer_quality.shown_path(record) == os.path.join("benchmarks",
                                                               "transfer_quality.jsonl")
    assert transfer_quality.shown_path(str(tmp_path / "r.jsonl")) == str(tmp_path / "r.jsonl")


def test_variants_are_compared_on_the_seeds_they_share():
    """The main table pairs the seeds all its variants have; a variant tried
    on fewer seeds is set beside them on its own seeds, never mixed in."""
    import variant_runs

    def row(variant, seed, accuracy):
        return {"model": "vgg16", "shots": 5, "seed": seed, "variant": variant,
                "accuracy": accuracy}

    rows = [row("scratch", 0, 0.8), row("scratch", 1, 0.6), row("joint", 0, 0.9),
            row("joint", 1, 0.7), row("joint", 2, 0.1),  # Seed 2: only one variant so far.
            row("joint_top", 0, 0.5)]
    main = variant_runs.accuracy_table(rows, ["scratch", "joint"], "joint").splitlines()[-1]
    assert main == "| digits | vgg16 | 5 | 2 | 0.700 | 0.800 | joint | +0.100 |"
    beside = variant_runs.variants_beside(rows, ["joint_top"], ["scratch", "joint"])
    assert beside.splitlines()[-1] == (
        "| digits | vgg16 | 5 | joint_top | 1 | 0.500 | 0.800 | 0.900 |")


def test_a_joint_source_head_is_set_beside_the_source_alone_on_its_own_network():
    """The whole base is what the tool trains for the source alone; the
    joint cut is the network a default joint run's source head is on, and a
    `*_top` variant's is the whole base."""
    import multitask

    def row(variant, accuracy, source_accuracy=None, shots=10):
        return {"dataset": "fashion_mnist", "model": "vgg16", "shots": shots, "seed": 0,
                "variant": variant, "accuracy": accuracy, "source_accuracy": source_accuracy}

    rows = [row("source_alone", 0.915, shots=0), row("source_alone_at_cut", 0.902, shots=0),
            row("joint", 0.89, 0.900), row("joint_top", 0.88, 0.920)]
    lines = multitask.source_table(rows).splitlines()[2:]
    assert lines == [
        "| fashion_mnist | vgg16 | 10 | joint | 1 | 0.900 | 0.915 | -0.015 | 0.902 | -0.002 |",
        "| fashion_mnist | vgg16 | 10 | joint_top | 1 | 0.920 | 0.915 | +0.005 | 0.915 | +0.005 |"]
    assert multitask.joint_cut("vgg16") == "block3" and multitask.joint_cut("resnet50") == "conv4"


def test_the_joint_phase_row_is_read_from_its_joint_and_fine_tune_run(tmp_path, capsys):
    """The joint-only row is the joint + fine-tune run's target and source
    heads on the test split at the joint phase's end, appended once, for the
    grid's cells only, and saying which run it was read from."""
    import argparse
    import multitask
    import variant_runs

    def tasks(target, source):
        return {"tasks": [{"test": {"accuracy": target, "f1": target - 0.01}},
                          {"test": {"accuracy": source, "f1": source}}]}

    rows_path = str(tmp_path / "rows.jsonl")
    for seed, model, (target, source) in ((0, "vgg16", (0.80, 0.90)),
                                          (1, "vgg16", (0.70, 0.95)),
                                          (0, "resnet50", (0.60, 0.85))):
        row = {"dataset": "fashion_mnist", "model": model, "shots": 10, "seed": seed,
               "variant": "joint_fine_tune", "accuracy": 0.99, "f1": 0.99,
               "source_accuracy": source}
        main_runs.append_row(rows_path, row)
        run = tmp_path / variant_runs.run_name(*variant_runs.row_key(row))
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps(tasks(target, source)))
    # Seed 2's run finished elsewhere: its folder is not here, and it is named.
    main_runs.append_row(rows_path, {**row, "model": "vgg16", "seed": 2})
    grid = variant_runs.Grid(
        args=argparse.Namespace(dataset="fashion_mnist", models="vgg16", seeds="0,1,2"),
        data_flags=[], shots=[10], variants={}, work=str(tmp_path), rows_path=rows_path,
        common=[])
    for _ in range(2):  # Once only.
        multitask.add_joint_phase_rows(grid, {"joint": "joint_fine_tune"})
    read = [row for row in main_runs.read_rows(rows_path) if row["variant"] == "joint"]
    assert [(r["model"], r["seed"], r["accuracy"], r["f1"], r["source_accuracy"],
             r["read_from"]) for r in read] == [
        ("vgg16", 0, 0.80, 0.80 - 0.01, 0.90, "joint_fine_tune"),
        ("vgg16", 1, 0.70, 0.70 - 0.01, 0.95, "joint_fine_tune")]
    assert "no joint row for ('fashion_mnist', 'vgg16', 10, 2)" in capsys.readouterr().err
