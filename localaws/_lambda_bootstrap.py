"""Entry of a local execution environment: ``python3.13 -I -S _lambda_bootstrap.py SANDBOX_JSON <handler>``.

Like the python3.13 runtime's bootstrap: the import path is the function package (``LAMBDA_TASK_ROOT``), then the
runtime directory (``LAMBDA_RUNTIME_DIR``: awslambdaric + boto3), then the standard library; ``-I -S`` keeps the
caller's site-packages (torch, the dev venv) and PYTHON* variables out. Only the standard library is used here.

Before the handler is imported, the sandbox (:func:`enter_sandbox`) gives the process Lambda's file system view in
a private mount namespace: the task root mounted read-only, and a fresh ``/tmp`` of its own, a tmpfs capped at
the function's ephemeral storage. Paths under the machine's /tmp that the function must read (a local MODEL_URI,
a task root, runtime directory or interpreter there) are carried into the new /tmp read-only. Without the privilege for a mount namespace (neither
root nor unprivileged user namespaces) it says so on stderr and runs on the machine's file system.
"""

import ctypes
import json
import os
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
# statvfs flags that a bind remount must repeat (the kernel refuses to drop locked ones in a user namespace)
KEPT_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048 | 4096  # + noatime, nodiratime, relatime


def _mount(libc, source, target, fstype, flags, data=None) -> None:
    encode = lambda text: text.encode() if text is not None else None  # noqa: E731
    if libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source or fstype} on {target}: {os.strerror(errno)}")


def _bind_read_only(libc, source: str, target: str) -> None:
    _mount(libc, source, target, None, MS_BIND | MS_REC)
    kept = os.statvfs(target).f_flag & KEPT_FLAGS
    _mount(libc, None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)


def enter_sandbox(config: dict) -> None:
    """Read-only task root, private capped /tmp (see the module docstring)."""
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = os.getuid(), os.getgid()
    os.unshare(os.CLONE_NEWNS | (0 if uid == 0 else os.CLONE_NEWUSER))
    if uid != 0:  # become root of the new user namespace, which owns the new mount namespace
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as handle:
                handle.write(text)
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    under_tmp = sorted({os.path.realpath(path) for path in _with_link_targets(config["carry"])
                        if os.path.realpath(path).startswith("/tmp/") and os.path.exists(path)})
    carried = [path for path in under_tmp if not any(path.startswith(other + "/") for other in under_tmp)]
    # hold each /tmp path open before the tmpfs hides it, then bind it back from /proc/self/fd
    held = [(os.open(path, os.O_PATH), path) for path in carried]
    _mount(libc, "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={config['tmp_mb']}m,mode=1777")
    for fd, path in held:
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
        _bind_read_only(libc, f"/proc/self/fd/{fd}", path)
        os.close(fd)
    task_root = os.path.realpath(config["task_root"])
    if not any(task_root == path or task_root.startswith(path + "/") for path in carried):
        _bind_read_only(libc, task_root, task_root)


def _with_link_targets(paths: list[str]) -> list[str]:
    """The carried paths plus where a carried folder's own symlinks point (a package folder may link the entries
    of another one, e.g. a checkout under /tmp): without them the links would dangle under the new /tmp."""
    found = list(paths)
    for path in paths:
        if os.path.isdir(path):
            found += [os.path.realpath(entry.path) for entry in os.scandir(path) if entry.is_symlink()]
    return found


def main() -> None:
    config = json.loads(sys.argv[1])
    try:
        enter_sandbox(config)
    except OSError as error:
        print(f"localaws sandbox: not isolated ({error}): the task root is read-only only by its file modes "
              "and /tmp is the machine's", file=sys.stderr, flush=True)
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    runtime_dir = os.environ["LAMBDA_RUNTIME_DIR"]
    stdlib = [path for path in sys.path if path and not path.startswith(os.path.dirname(os.path.abspath(__file__)))]
    sys.path[:] = [task_root, runtime_dir, *stdlib]
    os.chdir(task_root)
    from awslambdaric.__main__ import main as ric_main

    ric_main(["awslambdaric", *sys.argv[2:]])


if __name__ == "__main__":
    main()
