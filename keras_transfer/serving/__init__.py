"""Serving: the atomic, versioned SavedModel export, its signatures, the model
card, TFLite, re-export of a finished run and the predictor."""
