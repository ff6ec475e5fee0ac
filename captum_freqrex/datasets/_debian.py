"""Locating the Debian packages the dataset builders read, and the error when one is missing."""

from __future__ import annotations

import os
import shutil
from typing import Iterable, List, Mapping, Sequence

__all__ = ["DebianPackageMissing", "require_packages"]


class DebianPackageMissing(RuntimeError):
    r"""A Debian package a dataset builder reads is not installed.

    Nothing is installed silently: the message ends with the exact ``apt-get install`` line that
    fixes it.

    Attributes:
        packages (tuple of str): The missing Debian packages.
        command (str): The shell command that installs them.

    Args:
        packages (sequence of str): The missing Debian packages.
        what (str): What needs them, for the message.
        missing_paths (sequence of str, optional): The paths that were looked for. Default: ()
    """

    def __init__(self, packages: Sequence[str], what: str, missing_paths: Sequence[str] = ()) -> None:
        self.packages = tuple(packages)
        self.command = "sudo apt-get update && sudo apt-get install -y " + " ".join(self.packages)
        where = f" (not found: {', '.join(missing_paths)})" if missing_paths else ""
        super().__init__(f"{what} needs the Debian package(s) {', '.join(self.packages)}{where}; install with: {self.command}")


def _present(path: str) -> bool:
    if os.sep not in path:  # an executable on PATH
        return shutil.which(path) is not None
    return os.path.exists(path)


def require_packages(what: str, needs: Mapping[str, Iterable[str]]) -> None:
    r"""Raise :class:`DebianPackageMissing` unless every package's marker paths exist.

    Args:
        what (str): What needs the packages, for the message (e.g. "build_speech").
        needs (dict): Debian package name -> paths that must exist when it is installed (absolute
                    paths, or bare names of executables looked up on ``PATH``).

    Raises:
        DebianPackageMissing: Naming every package with a missing path, in the order given.
    """
    missing: List[str] = []
    paths: List[str] = []
    for package, markers in needs.items():
        absent = [p for p in markers if not _present(p)]
        if absent:
            missing.append(package)
            paths.extend(absent)
    if missing:
        raise DebianPackageMissing(missing, what, paths)
