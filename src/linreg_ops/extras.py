"""Optional dependencies: import them where needed, or say in one line how to install them.

The message names the exact command for *this* interpreter and installation: an editable
install from a checkout gets ``pip install -e '<checkout>[extra]'``, anything else the
package name, because ``linreg-ops`` is not on PyPI under that name for every user.
"""

import importlib
import json
import sys
from importlib import metadata
from types import ModuleType
from urllib.parse import unquote, urlparse

from linreg_ops.errors import MissingExtraError

__all__ = [
    "install_command",
    "require",
]


def install_command(extra: str) -> str:
    """The pip command that adds ``extra`` to the environment running this process."""
    target, editable = f"linreg-ops[{extra}]", ""
    try:
        direct_url = metadata.distribution("linreg-ops").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        direct_url = None
    if direct_url:
        info = json.loads(direct_url)
        url = urlparse(info.get("url", ""))
        if url.scheme == "file":
            editable = "-e " if info.get("dir_info", {}).get("editable") else ""
            target = f"{unquote(url.path)}[{extra}]"
    return f"{sys.executable} -m pip install {editable}'{target}'"


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """``import module``, or a ``MissingExtraError`` naming ``extra`` and the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or module
        raise MissingExtraError(
            f"{purpose} needs the '{extra}' extra ({missing} is not installed): "
            f"{install_command(extra)}"
        ) from None
