"""Bad input, as every command line reports it: one line on stderr that names the file or option, and
exit status 2; never a traceback. Only the error types that mean "the input is wrong" are caught, so a
genuine bug still shows its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from blending.typed_config import ConfigError

EXIT_BAD_INPUT = 2

# What any command may meet in a path or file it is given; each entry point adds its own error types.
COMMON_ERRORS: tuple[type[BaseException], ...] = (
    FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, ConfigError,
)


def one_line(error: BaseException) -> str:
    """The error's message on one line; an OS error as `FILE: what went wrong`."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror}"
    text = " ".join(str(error).split())
    return text or type(error).__name__


def reports_bad_input(prog: str, *errors: type[BaseException]) -> Callable:
    """Decorate a `main(argv) -> int`: the errors of `errors` and COMMON_ERRORS become `prog: message`
    on stderr and exit status 2."""
    caught = COMMON_ERRORS + errors

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def wrapped(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except caught as error:
                print(f"{prog}: {one_line(error)}", file=sys.stderr, flush=True)
                return EXIT_BAD_INPUT

        return wrapped

    return decorate
