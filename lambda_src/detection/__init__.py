"""Lambda core: image -> event -> preprocess -> session -> postprocess -> response.

Only onnxruntime, NumPy and Pillow are imported here (boto3 lazily, for S3), so the same code runs in the
Lambda package, in export's parity gate and in the SageMaker entry point.
"""
