"""Training: the config (defaults, file, flags), the one step/epoch loop (``train_step``, ``run_epoch``) and
``fit``, resumable state, ensembles."""
