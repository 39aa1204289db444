"""Inference: the ``Scorer`` contract (``contract``), its torch (``scorer.Detector``) and ONNX Runtime
(``onnx_engine.OnnxDetector``) engines, batched logits, and the one calibration (temperature + threshold)."""
