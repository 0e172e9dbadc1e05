"""Batch detection over an S3 prefix with the stack's Step Functions Distributed Map (``python -m batch``)."""
