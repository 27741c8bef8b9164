"""Shell completion by argcomplete: the shell code to load, and the hook ``main`` calls.

argcomplete is imported only when a shell asks for completions (``_ARGCOMPLETE`` is set), so
an ordinary command never pays for it.
"""

import argparse
import os

__all__ = ["SHELLS", "complete", "shell_code"]

SHELLS = ("bash", "zsh", "fish", "tcsh", "powershell")


def complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request and exit, when there is one."""
    if "_ARGCOMPLETE" in os.environ:
        import argcomplete

        argcomplete.autocomplete(parser)


def shell_code(shell: str) -> str:
    """What ``eval "$(linreg-ops completion bash)"`` loads."""
    from argcomplete.shell_integration import shellcode

    code: str = shellcode(["linreg-ops"], shell=shell)
    return code
