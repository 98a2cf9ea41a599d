"""The safety net (`--keep_best_phase`): fine-tuning that ends worse on
validation than feature extraction does not get exported, nor does a
semi-supervised phase that ends worse than the supervised model it started
from.

Fine-tuning at too high a learning rate can wreck the pretrained features in
one epoch; the Keras guide's own published run got worse while its text said
better. The decision uses the validation split only (by `--monitor`); the
test split stays an honest report, never a selector.
"""

import warnings

from keras_transfer.evaluation import multitask_report
from keras_transfer.log import logger
from keras_transfer.training import callbacks as callbacks_lib


def value_at_best(phase, monitor):
    """`monitor` at the phase's best epoch, or None if the phase diverged."""
    if phase.best_epoch is None:
        return None
    if phase.monitor == monitor and phase.best_value is not None:
        return phase.best_value
    return phase.history[monitor][phase.best_epoch - phase.first_epoch - 1]


def is_worse(after, before, monitor):
    """True if `after` is worse than `before` (None: diverged, the worst)."""
    if after is None:
        return before is not None
    if before is None:
        return False
    if callbacks_lib.monitor_mode(monitor) == "min":
        return after > before
    return after < before


def keep_best_phase(classifier, phases, config, says=True):
    """Compares fine-tuning with feature extraction on validation and, when
    it is worse and `config.keep_best_phase`, restores the phase-1 weights.

    Returns the decision as a JSON-ready dict, or None when only one phase
    ran; `says` logs it.
    """
    if len(phases) < 2 or phases[-1].name != "fine_tune":
        return None
    first, second = phases[-2], phases[-1]
    monitor = config.monitor
    before, after = value_at_best(first, monitor), value_at_best(second, monitor)
    worse = is_worse(after, before, monitor)
    restored = worse and config.keep_best_phase
    decision = {
        "monitor": monitor,
        # What fine-tuning continued: feature extraction, or a multi-task
        # run's joint phase (its value under the key "feature_extraction").
        "before_phase": first.name,
        "feature_extraction": before,
        "fine_tune": after,
        "fine_tune_worse": worse,
        "keep_best_phase": config.keep_best_phase,
        "restored_feature_extraction": restored,
        "exported_phase": first.name if restored else second.name,
    }
    shown = "diverged" if after is None else f"{after:.4f}"
    if restored:
        with warnings.catch_warnings():
            # The checkpoint also holds phase 1's optimizer, which is not the
            # one compiled now; only the model's weights are wanted.
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            classifier.load_weights(first.checkpoint)
    if not says:
        return decision
    earlier = multitask_report.phase_words(first.name)
    if restored:
        logger.info(f"safety net: fine-tuning ended worse on validation ({monitor} {shown} vs "
            f"{before:.4f} after {earlier}); the model of {earlier} is restored and "
            "exported (--nokeep_best_phase to keep the fine-tuned one)")
    elif worse:
        logger.warning(f"warning: fine-tuning ended worse on validation ({monitor} {shown} vs "
            f"{before:.4f}); exporting it anyway because --nokeep_best_phase")
    return decision


SEMI_SUPERVISED = "semi_supervised"


def keep_best(classifier, phases, config):
    """`keep_best_phase` over the supervised phases, then the best
    semi-supervised phase (FixMatch's, or the best self-training round)
    against the supervised model kept: the better on validation is exported.
    Returns the decision (None: one phase)."""
    semis = [phase for phase in phases if phase.name.startswith(SEMI_SUPERVISED)]
    if not semis:
        return keep_best_phase(classifier, phases, config)
    supervised = phases[:len(phases) - len(semis)]
    # Said once already, when phase 3 started from the supervised model kept.
    decision = keep_best_phase(classifier, supervised, config, says=False)
    kept_name = decision["exported_phase"] if decision else supervised[-1].name
    kept = next(phase for phase in supervised if phase.name == kept_name)
    monitor = config.monitor
    semi = semis[0]
    for later in semis[1:]:  # The best round; an equal later one wins.
        if not is_worse(value_at_best(later, monitor), value_at_best(semi, monitor), monitor):
            semi = later
    before, after = value_at_best(kept, monitor), value_at_best(semi, monitor)
    worse = is_worse(after, before, monitor)
    restored = worse and config.keep_best_phase
    exported = kept if restored else semi
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
        classifier.load_weights(exported.checkpoint)  # The supervised check may have
        # restored phase 1 over the semi-supervised weights.
    shown = "diverged" if after is None else f"{after:.4f}"
    if restored:
        logger.info(f"safety net: semi-supervised training ended worse on validation "
                    f"({monitor} {shown} vs {before:.4f} for {kept.name}); the supervised "
                    f"model is restored and exported (--nokeep_best_phase to keep it)")
    elif worse:
        logger.warning(f"warning: semi-supervised training ended worse on validation "
                       f"({monitor} {shown} vs {before:.4f}); exporting it anyway because "
                       "--nokeep_best_phase")
    return {**(decision or {"monitor": monitor}), "exported_phase": exported.name,
            SEMI_SUPERVISED: {"supervised_phase": kept.name, "supervised": before,
                              "semi_supervised_phase": semi.name,
                              "semi_supervised": after, "worse": worse,
                              "restored_supervised": restored}}
