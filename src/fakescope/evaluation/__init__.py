"""Evaluation: one function per metric (``metrics``), ``evaluate`` on a labelled dataset, and its plots."""
