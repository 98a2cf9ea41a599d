"""`python -m keras_transfer.predict`: see `cli/predict.py`."""

from keras_transfer.cli.predict import run_cli

if __name__ == "__main__":
    run_cli()
