"""Export stage: PyTorch detectors of the zoo (``zoo/``: RetinaNet, D-FINE, ...) or a bring-your-own ONNX file -> a verified model
bundle (model.onnx + class_map.json + model.json) -> optionally S3.

Entry points: ``python -m export --help`` and ``export.api.export_bundle(...)``.
"""
