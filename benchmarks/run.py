"""Every speed benchmark in one run: prints each table, then writes them into
benchmarks/RESULTS.md with a description of the machine.

    python benchmarks/run.py            # the full set (about an hour here)
    python benchmarks/run.py --quick    # smaller sizes, a few minutes a benchmark

Each benchmark runs in its own process, one after the other (never two at
once: they would slow each other), and prints Markdown; this script copies
what they printed, unchanged, between the markers in RESULTS.md and leaves
the rest of the file (the transfer-quality tables, readings) alone. Every
ratio in a table is measured side by side within one benchmark's process,
so a machine that is busier at one moment than another moves both sides.
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time

import keras_transfer  # noqa: F401  (turns oneDNN on before TensorFlow loads)
from table import write_block

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "RESULTS.md")
BEGIN = "<!-- benchmarks/run.py: begin (generated; edit run.py, not this block) -->"
END = "<!-- benchmarks/run.py: end -->"

# (section title, script, what the section must show)
BENCHMARKS = [
    ("Phase 1 with and without recorded base features", "feature_cache.py",
     "target: recorded features at least 5x faster, equal test accuracy"),
    ("Fine-tuning throughput: the tool's loop against a bare step", "train_step.py",
     "target: the tool at 90 % or more of the bare `tf.function` step"),
    ("Input pipeline against the model; time and memory as folders grow",
     "input_pipeline.py",
     "targets: the pipeline delivers over 3x what the model consumes; time grows "
     "linearly with the number of images and peak memory stays flat"),
    ("Forward efficiency against the machine's matmul peak", "forward_efficiency.py",
     "images per second of each frozen base, as achieved FLOP/s over the peak"),
    ("Serving latency at batch 1: the export against `model.predict`",
     "serving_latency.py", "target: the exported signature at least 5x faster"),
]

GPU_REFERENCES = """\
### On a GPU (public references, not measured here)

This machine has no GPU. The mixed-precision (`--mixed_precision`) and XLA
(`--jit_compile`) paths are tested for correctness on CPU
(`tests/test_end_to_end.py`, `tests/test_loop.py`). What to expect on GPUs, from
NVIDIA's published ResNet-50 v1.5 TensorFlow training throughput at 224 px (NVIDIA
DeepLearningExamples, `TensorFlow/Classification/ConvNets/resnet50v1.5`, NGC
20.06 container, one GPU, averaged over an epoch):

| GPU | precision | images/s |
|---|---|---|
| A100 40GB | mixed precision + XLA | 2,375 |
| A100 40GB | TF32 + XLA | 909 |
| V100 16GB | mixed precision + XLA | 1,270 |
| V100 16GB | FP32 + XLA | 412 |

To measure this tool on a GPU machine, install as the README says and run

    python benchmarks/run.py
    python -m keras_transfer.main --model=resnet50 --phase=both --mixed_precision \\
        --jit_compile --image_size=224

and compare `benchmarks/RESULTS.md` and the run's `metrics.json` timings.
"""


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in ("avx2", "fma", "avx512f", "avx512_vnni",
                                              "avx512_bf16", "amx_tile") if flag in flags]
    except OSError:
        pass
    return []


def _memory_gib():
    try:
        with open("/proc/meminfo") as handle:
            return int(handle.readline().split()[1]) / 2 ** 20
    except (OSError, ValueError, IndexError):
        return float("nan")


def machine_description():
    import keras
    import tensorflow as tf

    flags = ", ".join(_cpu_flags()) or "unknown"
    return (
        f"{_cpu_model()}, {os.cpu_count()} CPU cores visible (flags: {flags}), "
        f"{_memory_gib():.0f} GiB memory, {len(tf.config.list_physical_devices('GPU'))} "
        f"GPUs; {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, TensorFlow {tf.__version__}, Keras "
        f"{keras.__version__}, oneDNN "
        f"{'on' if os.environ.get('TF_ENABLE_ONEDNN_OPTS') == '1' else 'default'}"
    )


def run_benchmark(script, quick, log):
    """Runs one benchmark in its own process; returns (stdout, seconds)."""
    command = [sys.executable, os.path.join(HERE, script), *(["--quick"] if quick else [])]
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True,
                            cwd=os.path.dirname(HERE))
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"benchmarks/{script} failed (exit {result.returncode}); its "
                         f"errors are in {log.name}")
    # Runs made through the CLI's code log "[keras_transfer] ..." lines on
    # stdout; the benchmark's own output is what remains.
    output = "\n".join(line for line in result.stdout.splitlines()
                       if not line.startswith("[keras_transfer]"))
    return output.strip(), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and fewer rounds in every benchmark")
    parser.add_argument("--log", default=os.path.join(HERE, "run.log"),
                        help="where the benchmarks' own stderr goes")
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()[0]
    sections = []
    with open(args.log, "w") as log:
        for title, script, target in BENCHMARKS:
            print(f"\n## {title} ({script})", flush=True)
            output, seconds = run_benchmark(script, args.quick, log)
            print(output, flush=True)
            sections.append(f"### {title}\n\n`python benchmarks/{script}"
                            f"{' --quick' if args.quick else ''}` ({seconds:.0f} s); "
                            f"{target}.\n\n{output}\n")
    command = f"python benchmarks/run.py{' --quick' if args.quick else ''}"
    block = "\n".join([
        "## Speed (benchmarks/run.py)",
        "",
        f"`{command}`, {started:%Y-%m-%d %H:%M} UTC, "
        f"{(datetime.datetime.now(datetime.timezone.utc) - started).seconds / 60:.0f} "
        f"minutes; 1-minute load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after.",
        "",
        f"Machine: {machine_description()}.",
        "",
        *sections,
        GPU_REFERENCES,
    ])
    write_block(RESULTS, BEGIN, END, block)
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
