"""Build the Lambda deployment package: ``dist/lambda-<arch>.zip``.

The package is ``lambda_src/`` (``handler.py`` + ``detection/``) plus ``requirements/lambda.txt`` installed from
manylinux_2_28 wheels for the target (or from wheels for this interpreter with ``arch="local"``), pruned of what
the runtime never loads, zipped reproducibly and checked against the size budget.

Example:
    >>> from lambda_build import build_package                      # doctest: +SKIP
    >>> result = build_package(arch="local")                          # doctest: +SKIP
    >>> result.zip_path.name, result.zipped_bytes < 50 * 1024 ** 2    # doctest: +SKIP
    ('lambda-local.zip', True)
"""

from .build import BUDGET_UNZIPPED_BYTES, BUDGET_ZIPPED_BYTES, BuildResult, BudgetExceeded, build_package
from .targets import Target, resolve_target

__all__ = [
    "BUDGET_UNZIPPED_BYTES",
    "BUDGET_ZIPPED_BYTES",
    "BudgetExceeded",
    "BuildResult",
    "Target",
    "build_package",
    "resolve_target",
]
