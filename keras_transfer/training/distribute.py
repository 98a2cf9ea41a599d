"""The `tf.distribute` strategy factory."""

import hashlib
import json
import os
import tempfile

import tensorflow as tf

from keras_transfer.config import ConfigError


class StrategyError(ConfigError):
    """The requested strategy cannot run here; the message says why."""


def configure_cpu_replicas(replicas):
    """Splits the CPU into `replicas` logical devices.

    Must run before TensorFlow initialises its devices (the first op); the run
    calls it first thing. Raises StrategyError when that is too late, rather
    than silently training on one replica.
    """
    if replicas <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * replicas
        )
    except RuntimeError:
        available = len(tf.config.list_logical_devices("CPU"))
        if available < replicas:
            raise StrategyError(
                f"cpu_replicas={replicas} needs the CPU split before TensorFlow "
                f"initialises, but it already runs with {available} logical CPU "
                f"device(s); start a fresh process. Received: cpu_replicas={replicas}"
            ) from None


def _cpu_devices(replicas):
    return [device.name for device in tf.config.list_logical_devices("CPU")][:replicas]


def validate_tf_config(raw):
    """Parses TF_CONFIG for multi_worker; raises StrategyError when unusable."""
    if not raw:
        raise StrategyError("strategy=multi_worker needs the TF_CONFIG environment variable")
    try:
        tf_config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({error}). Received: {raw!r}") from None
    workers = tf_config.get("cluster", {}).get("worker")
    if not isinstance(workers, list) or not workers:
        raise StrategyError(f"TF_CONFIG has no cluster.worker list. Received: {raw!r}")
    task = tf_config.get("task", {})
    index = task.get("index")
    if task.get("type") not in ("worker", "chief") or not isinstance(index, int) or not (
        0 <= index < len(workers)
    ):
        raise StrategyError(
            f"TF_CONFIG task must be a worker with 0 <= index < {len(workers)}. "
            f"Received: task={task!r}"
        )
    return tf_config


# How long a collective may wait for a peer. A dead worker otherwise leaves
# the others blocked in their next all-reduce for good; TensorFlow's
# coordination service usually notices sooner (its heartbeats), this is the
# bound when it does not.
COLLECTIVE_TIMEOUT_SECONDS = 120


def is_chief(strategy):
    """Whether this process writes the run's outputs: always, except on the
    workers of a multi-worker cluster other than the chief (the task named
    "chief", or worker 0 when there is none)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_scratch_dir(strategy, output_dir):
    """A worker's (not the chief's) scratch folder: named by its task and the
    run, so a restarted worker clears what a killed one left."""
    resolver = strategy.cluster_resolver
    digest = hashlib.sha256(os.path.abspath(output_dir).encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"keras_transfer-{resolver.task_type}"
                        f"{resolver.task_id}-{digest}")


# What a collective raises when a peer died or stopped answering.
CLUSTER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                  tf.errors.AbortedError, tf.errors.CancelledError)


def cluster_failure_message(error):
    return (f"the cluster lost a worker ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:300]}). Restart every worker with the same "
            "command and --output_dir: the run continues from its last backup")


def make_strategy(name, cpu_replicas=0):
    """Returns the `tf.distribute.Strategy` for `--strategy`.

    auto: MirroredStrategy over the GPUs when there are several, else one device.
    mirrored: over the GPUs, or over `cpu_replicas` logical CPU devices.
    """
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        if cpu_replicas > 1 or not gpus:
            return tf.distribute.MirroredStrategy(_cpu_devices(max(cpu_replicas, 1)))
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        validate_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS))
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.OpError) as error:
            raise StrategyError(f"strategy=tpu: no TPU found ({error})") from None
        return tf.distribute.TPUStrategy(resolver)
    raise StrategyError(f"unknown strategy. Received: strategy={name!r}")
