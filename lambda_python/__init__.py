"""The Lambda-equivalent CPython 3.13 (x86_64, and arm64 under qemu) that builds and runs the AWS zips here.

Example:
    >>> from lambda_python import ensure_interpreter                     # doctest: +SKIP
    >>> ensure_interpreter("arm64").command("-c", "pass")[1]             # doctest: +SKIP
    '-L'
"""

from .interpreter import (ARCHES, PYTHON_VERSION, InterpreterUnavailable, LambdaPython, ensure_interpreter)

__all__ = ["ARCHES", "PYTHON_VERSION", "InterpreterUnavailable", "LambdaPython", "ensure_interpreter"]
