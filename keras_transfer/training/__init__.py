"""Training: the one loop for every strategy, phases, callbacks, backups and
resume, the feature cache, from-scratch training and the transfer phases."""
