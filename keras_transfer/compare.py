"""`python -m keras_transfer.compare`: see `cli/compare.py`."""

from keras_transfer.cli.compare import run_cli

if __name__ == "__main__":
    run_cli()
