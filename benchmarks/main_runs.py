"""What the benchmarks that run `python -m keras_transfer.main` as a user
would share: one run per output folder (a finished one is read, not run
again) and rows kept one JSON line each, so an interrupted benchmark
resumes where it stopped."""

import json
import os
import subprocess
import sys


def main_run(output_dir, flags, log_path):
    """Runs `python -m keras_transfer.main` unless `output_dir` finished;
    returns its metrics.json. A run stopped part-way (a benchmark killed, a
    session's end) resumes where it stopped, the tool's own guarantee for the
    same command; its log goes on after the stopped part's."""
    metrics_path = os.path.join(output_dir, "metrics.json")
    if not os.path.exists(metrics_path):
        command = [sys.executable, "-m", "keras_transfer.main", f"--output_dir={output_dir}",
                   "--verbose=2", *flags]
        with open(log_path, "a") as log:
            if subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode:
                raise SystemExit(f"{' '.join(command)} failed; see {log_path}")
    with open(metrics_path) as handle:
        return json.load(handle)


def read_rows(path):
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def append_row(path, row):
    with open(path, "a") as handle:
        handle.write(json.dumps(row) + "\n")
