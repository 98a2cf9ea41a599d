"""`python -m keras_transfer.main`: the training command (`cli/main.py`)."""

from keras_transfer.cli.main import run_cli

if __name__ == "__main__":
    run_cli()
