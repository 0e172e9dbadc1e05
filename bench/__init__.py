"""Benchmarks: PyTorch eager vs bare ONNX Runtime vs the Lambda handler in its built package, cold start,
package size and cost per million images (``python -m bench``; results in docs/BENCHMARKS.md)."""
