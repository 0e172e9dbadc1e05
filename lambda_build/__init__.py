"""Packaging: the Lambda deployment package ``dist/lambda-<arch>.zip`` (here) and the SageMaker ``model.tar.gz``
(:mod:`lambda_build.sagemaker`), sharing one wheel :class:`Target` and one wheel download (:mod:`.wheels`).

The package is ``lambda_src/`` (``handler.py`` + ``detection/``) plus ``requirements/lambda.txt`` installed from
manylinux_2_28 wheels for the target (python3.13; ``arch="local"``: wheels for this interpreter, a developer
shortcut nothing else uses), pruned of what the runtime never loads, ELF-checked against Amazon Linux 2023,
byte-compiled by the Lambda-equivalent interpreter (:mod:`lambda_python`), zipped reproducibly and checked against
the size budget.

Example:
    >>> from lambda_build import build_package                      # doctest: +SKIP
    >>> result = build_package(arch="x86_64")                         # doctest: +SKIP
    >>> result.zip_path.name, result.zipped_bytes < 50 * 1024 ** 2    # doctest: +SKIP
    ('lambda-x86_64.zip', True)
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
