"""`python -m keras_transfer.export`: see `cli/export.py`."""

from keras_transfer.cli.export import run_cli

if __name__ == "__main__":
    run_cli()
