"""Training: the config (defaults, file, flags), the one epoch/step loop (``fit``), resumable state, ensembles."""
