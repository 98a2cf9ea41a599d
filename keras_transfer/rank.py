"""`python -m keras_transfer.rank`: see `cli/rank.py`."""

from keras_transfer.cli.rank import run_cli

if __name__ == "__main__":
    run_cli()
