"""Does transfer pay on few-shot targets? Our defaults against scratch and
the plain recipe, mean and spread over seeds; and does ranking the candidates
before training pick the ones that fine-tune best?

    python benchmarks/transfer_quality.py [--quick] [--models=vgg16,resnet50]
        [--shots=5,10,20] [--seeds=3] [--sources=digits,fashion_mnist]

Target: digits 5-9 with 5, 10 or 20 training labels per class (the test split
is the same for every method and shot count of a seed). Sources: digits 0-4
(the embedded task) and Fashion-MNIST's ten classes, 150 images each (Debian's
dataset-fashion-mnist). Methods:
- scratch: the same network from random initialisation, all its layers
  trained on the target for the transfer runs' budget (epochs + fine-tune
  epochs) at the backbone's from-scratch learning rate;
- plain: the recipe in ../shared/DESIGN.md: the whole source-pretrained base
  frozen, a head at Adam 1e-3, then all of it unfrozen at a constant 1e-5,
  no label smoothing (source or target), on the same epochs (and steps an
  epoch) as ours;
- ours (head): our feature extraction alone (`--phase=feature_extraction`);
- ours (both): our default `--phase=both`.
Every run goes through `keras_transfer.run.run`, exactly what the CLI runs
(with `--noexport`: the benchmark reads test accuracy, not SavedModels).

Ranking: for every shot count and seed, each candidate (backbone x source
base) is scored by `keras_transfer.rank` on the frozen features of the
training split, and Kendall's tau between each estimator's scores and the
candidates' `ours (both)` test accuracy says how well the ranking predicts
fine-tuning; the time it takes is set against fine-tuning every candidate.

Hours of runs: each finished run is appended to `--results` (JSON lines) at
once, and a restarted benchmark skips the runs already there whose settings
are unchanged, so a stop loses one run at most. At the end the tables are
printed and written between markers into benchmarks/RESULTS.md.
"""

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import statistics
import tempfile
import time
import typing

import keras_transfer  # noqa: F401  (turns oneDNN on before TensorFlow loads)
from table import markdown, write_block

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = ("scratch", "plain", "ours (head)", "ours (both)")
ESTIMATORS = ("logme", "hscore", "nleep")
# Both sources small, as a project's own source task usually is: digits 0-4
# is ~125 training images a class; Fashion-MNIST (far from digits) is capped
# near that instead of its 6,000 a class, which would take an hour a base here.
SOURCE_EXAMPLES_PER_CLASS = {"digits": 0, "fashion_mnist": 150}
BEGIN = "<!-- benchmarks/transfer_quality.py: begin (generated) -->"
END = "<!-- benchmarks/transfer_quality.py: end -->"


def _value_type(hint):
    """A RunConfig annotation's value type: Optional[float] -> float (a
    setting whose default is None, e.g. fine_tune_learning_rate), Tuple[str,
    ...] -> tuple."""
    if typing.get_origin(hint) is typing.Union:
        hint = typing.get_args(hint)[0]
    return typing.get_origin(hint) or hint


def parse_settings(text):
    """`key=value+key=value` -> {key: value typed as the RunConfig field}."""
    from keras_transfer import config as config_lib

    defaults = config_lib.RunConfig()
    types = {name: _value_type(hint)
             for name, hint in typing.get_type_hints(config_lib.RunConfig).items()}
    changes = {}
    for assignment in filter(None, (text or "").split("+")):
        key, _, value = assignment.strip().partition("=")
        if not hasattr(defaults, key):
            raise SystemExit(f"no setting {key!r}. Received: {assignment!r}")
        kind = types[key]
        changes[key] = (tuple(value.split(",")) if kind is tuple else
                        value.lower() in ("1", "true") if kind is bool else
                        kind(value))
    return changes


def parse_variants(text):
    """`name:key=value+key=value;name2:...` -> {"ours (name)": {key: value}}:
    our default with some settings changed, side by side with it (how a
    candidate default earns its place)."""
    variants = {}
    for item in filter(None, (part.strip() for part in (text or "").split(";"))):
        name, _, assignments = item.partition(":")
        variants[f"ours ({name})"] = parse_settings(assignments)
    return variants


def method_config(method, base, variants=None):
    """The RunConfig of one method, from the shared settings in `base`."""
    if variants and method in variants:
        return dataclasses.replace(base, **variants[method])
    if method == "scratch":  # What --baseline trains, as a run of its own.
        return dataclasses.replace(base, weights="auto", phase="pretrain",
                                   pretrain_epochs=base.epochs + base.fine_tune_epochs)
    if method == "plain":  # On the same epochs and steps as ours.
        return dataclasses.replace(base, phase="both", learning_rate=1e-3,
                                   fine_tune_learning_rate=1e-5, unfreeze="all",
                                   base_layer="top", fine_tune_schedule="constant",
                                   label_smoothing=0.0)
    if method == "ours (head)":
        return dataclasses.replace(base, phase="feature_extraction")
    return base


def transfer_cut(config):
    """Where a transfer run from the source base cuts it: `base_layer`, with
    `auto` resolved by the package's rule for a source-pretrained base."""
    from keras_transfer.models import backbones

    return backbones.resolve_base_layer(config.backbone, config.base_layer, "source",
                                        config.phase)


def settings_key(config):
    """What a result depends on: every setting but where files go. A
    transfer run's `base_layer=auto` is keyed by the cut it resolves to: a
    new rule must not reuse runs recorded under the old one (from scratch,
    `phase=pretrain`, the whole network trains and auto stays auto)."""
    settings = {key: value for key, value in config.to_dict().items()
                if key not in ("output_dir", "cache_dir")}
    if config.phase != "pretrain" and config.base_layer == "auto":
        settings["base_layer"] = transfer_cut(config)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class Results:
    """The JSON-lines file of finished runs and rankings, keyed by settings."""

    def __init__(self, path):
        self.path = path
        self.entries = {}
        self.used = []  # Entries this invocation reads or adds: its table's runs.
        if os.path.isfile(path):
            with open(path) as handle:
                text = handle.read()
            for line in text.splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # Cut short by a stop mid-write: that run runs again.
                self.entries[entry["key"]] = entry
            if text and not text.endswith("\n"):
                with open(path, "a") as handle:  # The next result starts a line of its own.
                    handle.write("\n")

    def get(self, key):
        entry = self.entries.get(key)
        if entry is not None:
            self.used.append(entry)
        return entry

    def add(self, entry):
        entry = {**entry, "finished": datetime.datetime.now(
            datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")}
        self.entries[entry["key"]] = entry
        self.used.append(entry)
        with open(self.path, "a") as handle:  # One line per result: a stop loses none.
            handle.write(json.dumps(entry) + "\n")
        return entry


def run_method(results, config, labels):
    from keras_transfer.run import execute as run

    key = f"run:{settings_key(config)}"
    entry = results.get(key)
    if entry is None:
        start = time.time()
        metrics = run.run(config)
        entry = results.add({
            "key": key, **labels, "accuracy": metrics["test"]["accuracy"],
            "seconds": round(time.time() - start, 1),
            # The source base is pretrained once and cached: not the method's cost.
            "source_seconds": metrics["timings"].get("source_pretrain", 0.0)})
    print(f"{labels['source']:>13} {labels['model']:>9} {labels['shots']:>3} seed "
          f"{labels['seed']} {labels['method']:>12}: {entry['accuracy']:.3f} "
          f"({entry['seconds']:.0f} s)", flush=True)
    return entry


def rank_candidates(results, base, models, labels):
    """Estimator scores of each backbone on `base`'s source and target."""
    from keras_transfer.run import rank

    cuts = [transfer_cut(dataclasses.replace(base, model=model)) for model in models]
    # The estimators are part of the key: adding one ranks again rather than
    # reading back rows that lack its scores.
    key = (f"rank:{settings_key(base)}:{','.join(f'{m}@{c}' for m, c in zip(models, cuts))}"
           f":{'+'.join(ESTIMATORS)}")
    entry = results.get(key)
    if entry is None:
        start = time.time()
        rows = rank.rank_candidates(base, models, ["auto"], list(ESTIMATORS),
                                    log=lambda line: None)
        entry = results.add({"key": key, **labels, "seconds": round(time.time() - start, 1),
                             "rows": rows})
    return entry


def kendall_tau(scores, accuracies):
    from scipy import stats

    tau = stats.kendalltau(scores, accuracies).statistic
    return None if tau != tau else float(tau)  # NaN: every accuracy tied.


def top_pick_shortfall(scores, accuracies):
    """How much accuracy training only the estimator's top candidate gives up
    against the best candidate: 0 when the ranking picks the winner."""
    picked = max(range(len(scores)), key=lambda i: scores[i])
    return max(accuracies) - accuracies[picked]


def summarise(values):
    mean = statistics.mean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, spread


def signed(difference):
    """'+0.004'; an exact tie reads '+0.000', never float noise's '-0.000'."""
    return f"{round(difference, 3) + 0.0:+.3f}"


def quality_table(rows, seeds, methods):
    leads = [m for m in ("scratch", "plain") if m in methods and "ours (both)" in methods]
    header = ["source", "model", "labels/class", *methods, *(f"ours - {m}" for m in leads)]
    lines = []
    for (source, model, shots), scores in rows.items():
        means = {method: summarise(values) for method, values in scores.items()}
        lines.append([source, model, shots,
                      *(f"{mean:.3f} ± {spread:.3f}" for mean, spread in means.values()),
                      *(signed(means["ours (both)"][0] - means[m][0]) for m in leads)])
    return (f"Test accuracy on digits 5-9, mean ± standard deviation over {seeds} seed(s); "
            "`ours - X` is our default's lead over X (target: above 0 on every row with "
            "source digits)\n\n" + markdown(header, lines))


def ranking_table(rankings):
    """Kendall's tau and the top pick's shortfall per estimator over each
    (shots, seed)'s candidates, and the time of ranking against fine-tuning
    every candidate."""
    lines = []
    for shots in sorted({entry["shots"] for entry in rankings}):
        group = [entry for entry in rankings if entry["shots"] == shots]
        taus = {e: [entry["tau"][e] for entry in group if entry["tau"][e] is not None]
                for e in ESTIMATORS}
        rank_seconds = sum(entry["rank_seconds"] for entry in group)
        tune_seconds = sum(entry["tune_seconds"] for entry in group)
        lines.append([shots, group[0]["candidates"], len(group),
                      *(f"{statistics.mean(t):+.2f}" if t else "n/a" for t in taus.values()),
                      *(f"{statistics.mean(entry['shortfall'][e] for entry in group):.3f}"
                        for e in ESTIMATORS),
                      f"{rank_seconds:.0f}", f"{tune_seconds:.0f}",
                      f"{tune_seconds / max(rank_seconds, 1e-9):.1f}x"])
    header = ["labels/class", "candidates", "seeds", *(f"tau {e}" for e in ESTIMATORS),
              *(f"top pick short {e}" for e in ESTIMATORS),
              "rank s", "fine-tune all s", "time saved"]
    return ("Ranking the candidates (backbone x source) before training: Kendall's tau "
            "between each estimator's scores and the fine-tuned (`ours (both)`) test "
            "accuracy, mean over seeds (+1: the same order; n/a: fewer than two "
            "candidates or all tied), what training only each estimator's top "
            "candidate gives up against the best one (`top pick short`, test "
            "accuracy, mean over seeds; 0: it picks the winner), and ranking time "
            "against fine-tuning every candidate (source pretraining excluded from "
            "both)\n\n" + markdown(header, lines))


def shown_path(path):
    """The record's path as the reader would type it: relative from the
    repository, absolute when it lies elsewhere."""
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="vgg16, 10 labels per class, 1 seed, digits source only")
    parser.add_argument("--models", default="vgg16,resnet50")
    parser.add_argument("--shots", default="5,10,20")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sources", default="digits,fashion_mnist")
    parser.add_argument("--cache_dir", default=None,
                        help="source-base cache (default: the tool's own, so a resumed "
                        "benchmark reuses the bases it pretrained)")
    parser.add_argument("--results", default=None,
                        help="JSON lines of finished runs, read to resume (default: "
                        "benchmarks/transfer_quality[_quick].jsonl)")
    parser.add_argument("--variants", default="",
                        help="extra methods: our default with settings changed, as "
                        "'NAME:key=value+key=value;NAME2:...' (e.g. "
                        "'long:fine_tune_epochs=10')")
    parser.add_argument("--set", default="",
                        help="settings changed for every method, scratch included, as "
                        "'key=value+key=value' (a budget such as batch_size or epochs "
                        "stays the same for all)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="which of the standard methods to run")
    parser.add_argument("--no_write", action="store_true",
                        help="print the tables without writing RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.models, args.shots, args.seeds, args.sources = "vgg16", "10", 1, "digits"
    results = Results(args.results or os.path.join(
        HERE, f"transfer_quality{'_quick' if args.quick else ''}.jsonl"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # ImageNet weights are not what is measured: never probe for them.
    os.environ["KERAS_TRANSFER_OFFLINE"] = "1"
    from keras_transfer import config as config_lib

    variants = parse_variants(args.variants)
    methods = [m for m in METHODS if m in args.methods.split(",")] + list(variants)
    models, sources = args.models.split(","), args.sources.split(",")
    shot_counts = [int(s) for s in args.shots.split(",")]
    started = datetime.datetime.now(datetime.timezone.utc)
    scores, rankings = {}, []
    with tempfile.TemporaryDirectory() as workdir:
        cache_dir = args.cache_dir
        for shots in shot_counts:
            for seed in range(args.seeds):
                candidates = []  # (scores per estimator, fine-tuned accuracy, seconds)
                rank_seconds = 0.0
                for source in sources:
                    base = config_lib.RunConfig(
                        examples_per_class=shots, seed=seed, verbose=0, export=False,
                        cache_dir=cache_dir, source_dataset=source,
                        source_classes=None if source == "digits" else
                        ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
                        source_examples_per_class=SOURCE_EXAMPLES_PER_CLASS[source],
                        **parse_settings(args.set))
                    tuned = {}
                    for model in models:
                        for method in methods:
                            labels = dict(source=source, model=model, shots=shots,
                                          seed=seed, method=method)
                            config = dataclasses.replace(
                                method_config(method, dataclasses.replace(base, model=model),
                                              variants),
                                output_dir=os.path.join(workdir, "-".join(
                                    str(v) for v in labels.values()).replace(" ", "_")))
                            entry = run_method(results, config, labels)
                            scores.setdefault((source, model, shots), {
                                m: [] for m in methods})[method].append(entry["accuracy"])
                            if method == "ours (both)":
                                tuned[model] = entry
                    if len(tuned) < len(models):
                        continue  # Ranking is judged against our default: not run.
                    ranked = rank_candidates(results, base, models,
                                             dict(source=source, shots=shots, seed=seed))
                    rank_seconds += ranked["seconds"]
                    for row in ranked["rows"]:
                        entry = tuned[row["model"]]
                        candidates.append(({e: row[e] for e in ESTIMATORS},
                                           entry["accuracy"],
                                           entry["seconds"] - entry["source_seconds"]))
                if not candidates:
                    continue
                tau = {e: kendall_tau([c[0][e] for c in candidates],
                                      [c[1] for c in candidates]) if len(candidates) > 1
                       else None for e in ESTIMATORS}
                shortfall = {e: top_pick_shortfall([c[0][e] for c in candidates],
                                                   [c[1] for c in candidates])
                             for e in ESTIMATORS}
                rankings.append({"shots": shots, "seed": seed, "tau": tau,
                                 "shortfall": shortfall,
                                 "candidates": len(candidates), "rank_seconds": rank_seconds,
                                 "tune_seconds": sum(c[2] for c in candidates)})
    finished = sorted(entry["finished"] for entry in results.used)
    command = " ".join(["python benchmarks/transfer_quality.py", *(
        ["--quick"] if args.quick else []), *(
        [f"--set='{args.set}'"] if args.set else []), *(
        [f"--variants='{args.variants}'"] if args.variants else [])])
    text = "\n\n".join([
        "## Transfer quality (benchmarks/transfer_quality.py)",
        f"`{command}`: models {args.models}, {args.shots} labels per class, "
        f"{args.seeds} seed(s), sources {args.sources}; runs finished between "
        f"{finished[0]} and {finished[-1]} UTC (this invocation started "
        f"{started:%Y-%m-%d %H:%M}; earlier runs come from "
        f"`{shown_path(results.path)}`'s record).",
        quality_table(scores, args.seeds, methods),
        *([ranking_table(rankings)] if rankings else []),
    ])
    print("\n" + text)
    if not args.no_write:
        write_block(os.path.join(HERE, "RESULTS.md"), BEGIN, END, text)
        print(f"\nwritten to {os.path.join(HERE, 'RESULTS.md')}")


if __name__ == "__main__":
    main()
