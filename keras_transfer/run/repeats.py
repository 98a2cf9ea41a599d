"""`--repeats=N`: one seed's training N times (seeds seed..seed+N-1), and the
mean and spread of what each arm scored on the same test split.

One seed's gain of a point is often seed noise; the spread says whether a
difference between transfer and scratch is larger than that noise. The data
and its splits stay fixed by `--seed`; initialisation, shuffling and
augmentation change with each seed.
"""

import dataclasses
import math

import keras
import numpy as np

from keras_transfer.log import logger

# The arms compared: test after phase 1, after phase 2, the exported model,
# and the from-scratch baseline.
ARMS = ("feature_extraction", "fine_tune", "exported", "scratch")
SCORES = ("accuracy", "f1", "auc")


def run(config, ctx, train_seed):
    """Calls `train_seed(seed_config, seed_ctx)` for each seed (`RunContext.for_seed`).

    Returns (the first seed's outcome, the per-seed test scores). Later
    seeds' models are dropped once scored, so memory holds at most two.
    """
    first, rows = None, []
    for index in range(config.repeats):
        seed = config.seed + index
        if config.repeats > 1:
            logger.info(f"repeat {index + 1}/{config.repeats}: seed {seed}")
        keras.utils.set_random_seed(seed)
        outcome = train_seed(dataclasses.replace(config, seed=seed), ctx.for_seed(index, seed))
        rows.append(scores_of(outcome))
        if index == 0:
            first = outcome
    return first, rows


def scores_of(outcome):
    """One seed's test summaries per arm (None for arms that did not run)."""
    phases = {phase.name: phase.test for phase in outcome.phases}
    row = {"seed": outcome.seed,
           "feature_extraction": phases.get("feature_extraction"),
           "fine_tune": phases.get("fine_tune"),
           "exported": {key: outcome.final.report[key] for key in SCORES},
           "exported_phase": (outcome.safety or {}).get(
               "exported_phase", outcome.phases[-1].name),
           "scratch": None}
    if outcome.baseline:
        row["scratch"] = {key: outcome.baseline["test"][key] for key in SCORES}
    return row


def spread(values):
    """mean, std (sample, ddof=1; 0 for one value), min, max, and the values."""
    values = [float(v) for v in values]
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std, "min": min(values),
            "max": max(values), "n": len(values), "values": values}


def aggregate(rows):
    """Per arm and score: the spread over seeds (arms absent in a run left out)."""
    result = {}
    for arm in ARMS:
        if any(row[arm] is None for row in rows):
            continue
        result[arm] = {score: spread([row[arm][score] for row in rows])
                       for score in SCORES if all(row[arm][score] is not None for row in rows)}
    return result


def gain_over_scratch(rows, arm, score="accuracy"):
    """Transfer minus scratch, paired by seed, with a verdict on its sign.

    A gain counts as clear when it exceeds twice its standard error over
    seeds; with one seed there is no estimate of the noise, and it says so.
    """
    differences = [row[arm][score] - row["scratch"][score] for row in rows]
    gain = float(np.mean(differences))
    result = {"arm": arm, "score": score, "gain": gain, "n": len(differences),
              "transfer": float(np.mean([row[arm][score] for row in rows])),
              "scratch": float(np.mean([row["scratch"][score] for row in rows])),
              "differences": differences}
    if len(differences) < 2:
        result["standard_error"] = None
        result["verdict"] = "one seed: no estimate of seed noise (use --repeats=3)"
        return result
    error = float(np.std(differences, ddof=1) / math.sqrt(len(differences)))
    result["standard_error"] = error
    if abs(gain) <= 2 * error:
        result["verdict"] = "no clear difference: within seed noise"
    else:
        result["verdict"] = "transfer is better" if gain > 0 else "scratch is better"
    return result


def transfer_vs_scratch(rows):
    """The comparison the report prints, or None without a baseline."""
    if any(row["scratch"] is None for row in rows):
        return None
    return {arm: gain_over_scratch(rows, arm)
            for arm in ("feature_extraction", "fine_tune", "exported")
            if all(row[arm] is not None for row in rows)}


def entries(outcome, rows):
    """The metrics.json entries of the safety net, the seeds and (with a
    baseline) transfer versus scratch; logs the comparison."""
    result = {"safety_net": outcome.safety,
              "repeats": {"seeds": [row["seed"] for row in rows], "per_seed": rows,
                          "aggregate": aggregate(rows)}}
    if outcome.baseline:
        result["baseline"] = outcome.baseline
        result["comparison"] = transfer_vs_scratch(rows)
        for arm, comparison in result["comparison"].items():
            logger.info(f"{arm} vs scratch: test accuracy gain {comparison['gain']:+.4f} "
                f"over {comparison['n']} seed(s): {comparison['verdict']}")
    return result
