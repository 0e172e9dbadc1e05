"""Errors that carry an HTTP status, so every layer can fail with a clear message and the right code."""

from __future__ import annotations


class DetectionError(Exception):
    """Base error: ``status`` is the HTTP status to return, ``code`` a stable machine-readable name."""

    status = 500
    code = "InternalError"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict:
        """The error body every caller gets (HTTP body, direct-invoke result, SageMaker response)."""
        return {"error": {"code": self.code, "message": self.message, "status": self.status}}


class InternalError(DetectionError):
    """Our fault, with nothing the caller can change: they get only the request id to quote."""

    @classmethod
    def for_request(cls, request_id: str | None) -> "InternalError":
        return cls(f"internal error; quote request id {request_id} when reporting it")


class BadRequest(DetectionError):
    status = 400
    code = "BadRequest"


class Forbidden(DetectionError):
    status = 403
    code = "Forbidden"


class NotFound(DetectionError):
    status = 404
    code = "NotFound"


class PayloadTooLarge(DetectionError):
    status = 413
    code = "PayloadTooLarge"


class UnsupportedMediaType(DetectionError):
    status = 415
    code = "UnsupportedMediaType"


class EndpointError(DetectionError):
    """An accelerator endpoint answered with an error or with something we cannot read: a deployment fault."""

    status = 502
    code = "EndpointError"


class EndpointUnavailable(DetectionError):
    """An accelerator endpoint is missing, starting, throttled or over capacity: retry later."""

    status = 503
    code = "EndpointUnavailable"


class BundleError(DetectionError):
    """The model bundle (manifest, class map, model file) is missing or invalid: our fault, not the caller's."""

    status = 500
    code = "BundleError"


class ConfigError(DetectionError):
    """The function's environment is invalid (see ``settings``): a deployment fault."""

    status = 500
    code = "ConfigError"
