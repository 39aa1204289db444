"""Inference: the ``Scorer`` contract, its torch (``Detector``) and ONNX Runtime (``OnnxDetector``) engines,
batched logits, and the one calibration (temperature + threshold)."""
