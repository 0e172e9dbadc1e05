"""Benchmarks: PyTorch eager vs bare ONNX Runtime vs the Lambda handler in its built package, cold start,
package size and cost per million images (``python -m bench``; results in docs/BENCHMARKS.md)."""

import os

# torch's OpenMP pool spins after each op by default and would steal the shared cores from the ORT call that
# follows it; ORT here does not spin either (detection.session). Must be set before torch is imported, which
# the submodules do (through export).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
