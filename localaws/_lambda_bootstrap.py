"""Entry of a local execution environment, run as ``python -I -S _lambda_bootstrap.py <handler>``.

Like the python3.13 runtime's bootstrap: the import path is the function package (``LAMBDA_TASK_ROOT``), then the
runtime directory (``LAMBDA_RUNTIME_DIR``: awslambdaric + boto3), then the standard library; ``-I -S`` keeps the
caller's site-packages (torch, the dev venv) and PYTHON* variables out. Only the standard library is used here.
"""

import os
import sys


def main() -> None:
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    runtime_dir = os.environ["LAMBDA_RUNTIME_DIR"]
    stdlib = [path for path in sys.path if path and not path.startswith(os.path.dirname(os.path.abspath(__file__)))]
    sys.path[:] = [task_root, runtime_dir, *stdlib]
    os.chdir(task_root)
    from awslambdaric.__main__ import main as ric_main

    ric_main(["awslambdaric", *sys.argv[1:]])


if __name__ == "__main__":
    main()
