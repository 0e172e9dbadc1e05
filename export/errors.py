"""Export errors: each carries one line that says what went wrong and what to pass instead."""

from __future__ import annotations


class ExportError(Exception):
    """A user-fixable problem (bad flag, unreadable checkpoint, unknown graph layout, S3 refusal).

    The CLI prints ``str(error)`` as a single line and exits with ``exit_code``.
    """

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ParityError(ExportError):
    """The ONNX graph behind the Lambda's preprocessing does not reproduce PyTorch's detections."""

    exit_code = 3

    def __init__(self, message: str, *, report: dict | None = None):
        super().__init__(message)
        self.report = report or {}


class UploadError(ExportError):
    """The bundle could not be written to (or verified in) S3."""

    exit_code = 4
