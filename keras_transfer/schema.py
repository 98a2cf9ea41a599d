"""`metrics.json`: what a finished run records, key by key, and who reads it.

The run writes it (`run/record.py`, `run/execute.py`); everything that reads
a finished run reads it through `RunRecord`, so a key is spelled once, here:

| key | what | read by |
|---|---|---|
| `config` | the resolved settings (`run_config.json`'s) | report, compare, re-export, model card, `--phase=fine_tune` |
| `weights` | what `--weights` resolved to (`kind`, `load`, `detail`) | report, compare, model card |
| `dataset` | the task: classes, split sizes, `channels`, folder report | re-export, model card |
| `strategy` | `name`, `replicas`, `global_batch_size` | people |
| `source_pretrain` | the pretraining phase of a base trained here (the source task's, or the autoencoder's), or null | report |
| `base_probe` | `--weights=autoencoder`: linear probes of the base's features beside a random base, PCA and the cached supervised source base (`run/probe.py`), else null | report |
| `phases` | phase name -> its history, best epoch, test before and after | report, compare, `--phase=fine_tune` |
| `test` | the exported model's test metrics (`evaluation/metrics.py`) | report, compare, model card |
| `class_names` | the model's outputs, in order | re-export |
| `weights_fingerprint` | a hash of the final weights | people, tests |
| `versions` | keras_transfer, TensorFlow, Keras, Python | model card |
| `safety_net` | the safety net's decision (`exported_phase`, ...), or null | report, compare, re-export |
| `repeats` | per-seed test scores and their spread | report |
| `baseline`, `comparison` | with `--baseline`: scratch, and transfer against it | report |
| `distillation` | `--phase=distill`: the teacher (run, test scores, parameters), the student, their agreement, the settings, and the share of the teacher–scratch gap closed; else null | report, model card |
| `tasks` | `--phase=multitask`: one entry per task (the target's first): its data, weight, per-epoch history, validation and test scores, and, with `--baseline`, the task trained alone; else null | report |
| `resumed` | null, or the epochs done before a restart, per phase | people |
| `plots` | the PNGs written | report |
| `export` | the export's `path` and `version`, or null | the Python API |
| `timings` | seconds per part and in `total` | report, compare |
"""

import dataclasses
from typing import Optional

CONFIG_FILE = "run_config.json"
METRICS_FILE = "metrics.json"


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """A run's `metrics.json`, read back (the table above says what each is).

    Only `config` is required: a run of an earlier version lacks some of
    the others, and each reader checks for what it needs.
    """

    config: dict
    test: dict = dataclasses.field(default_factory=dict)
    weights: Optional[dict] = None
    dataset: Optional[dict] = None
    strategy: Optional[dict] = None
    source_pretrain: Optional[dict] = None
    base_probe: Optional[list] = None
    phases: dict = dataclasses.field(default_factory=dict)
    class_names: tuple = ()
    weights_fingerprint: Optional[str] = None
    versions: Optional[dict] = None
    safety_net: Optional[dict] = None
    repeats: Optional[dict] = None
    baseline: Optional[dict] = None
    comparison: Optional[dict] = None
    distillation: Optional[dict] = None
    tasks: Optional[list] = None
    resumed: Optional[dict] = None
    plots: dict = dataclasses.field(default_factory=dict)
    export: Optional[dict] = None
    timings: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, metrics):
        """The record of a metrics.json dict; keys it does not know are left
        out (a newer version's), a missing `config` is a KeyError naming it."""
        known = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in metrics.items() if key in known}
        if "config" not in values:
            raise KeyError("metrics.json has no 'config'")
        values["class_names"] = tuple(values.get("class_names") or ())
        return cls(**values)

    def to_dict(self):
        """The JSON-ready dict, as metrics.json holds it."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        values["class_names"] = list(self.class_names)
        return values

    @property
    def exported_phase(self):
        """The phase whose model was exported: the safety net's pick, else the last."""
        if self.safety_net and self.safety_net.get("exported_phase"):
            return self.safety_net["exported_phase"]
        return list(self.phases)[-1] if self.phases else None
