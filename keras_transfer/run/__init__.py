"""One run end to end (data -> weights -> phases -> evaluation -> export),
repeats over seeds, ranking of candidate bases, and the Python API."""
