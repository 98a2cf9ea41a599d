"""Memory stays flat as a folder grows: images stream from disk."""

import json

from conftest import run_python


def probe(count, tmp_path):
    result = run_python(["benchmarks/folder_probe.py", str(count), str(tmp_path / str(count))])
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_peak_memory_of_20000_images_stays_near_that_of_1000(tmp_path):
    small, large = probe(1000, tmp_path), probe(20000, tmp_path)
    # Every training image went through the pipeline once...
    assert (small["trained_on"], large["trained_on"]) == (800, 16000)
    # ...and 20x the images cost at most a few hundred MB more at the peak.
    assert large["peak_rss_mb"] - small["peak_rss_mb"] < 300, (small, large)
