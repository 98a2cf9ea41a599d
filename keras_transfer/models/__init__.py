"""Models: the backbone registry, the transfer classifier, `--weights` resolution."""
