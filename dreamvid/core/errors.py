"""Errors meant for the user: the CLI prints ``str(error)`` on one line, no traceback."""


class DreamvidError(Exception):
    """A failure the user can act on. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class Interrupted(DreamvidError):
    """A stop that was asked for (Ctrl-C, SIGTERM): what was done is saved. Not an error:
    the CLI prints it as a plain message, with exit status 130."""

    exit_code = 130


class InputError(DreamvidError):
    """Bad input (schedule, file, option): exit status 2, like argparse."""

    exit_code = 2


_OS_HINTS = {  # errno name -> what the user can do about it
    "ENOSPC": "free some disk space",
    "EDQUOT": "free some disk space (quota exceeded)",
    "EFBIG": "the file is larger than this file system or process allows; write somewhere else",
    "EACCES": "choose a location you can write to",
    "EPERM": "choose a location you can write to",
    "EROFS": "choose a location on a writable file system",
    "ENOTDIR": "a part of the path is a file, not a folder; choose another path",
    "EEXIST": "a file is in the way; remove it or choose another path",
    "EISDIR": "the path is a folder; give a file name",
    "ENOENT": "check the path",
}


def describe_os_error(err: OSError) -> str:
    """One line for a file system failure: ``<file>: <reason>; <what to do>``."""
    import errno

    name = errno.errorcode.get(err.errno or 0, "")
    where = f"{err.filename}: " if err.filename else ""
    reason = err.strerror or str(err) or type(err).__name__
    hint = _OS_HINTS.get(name)
    return f"{where}{reason}" + (f"; {hint}" if hint else "")


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA out of memory, or a failed CPU allocation (a MemoryError, or the plain RuntimeError
    torch raises when the allocator fails): the one place that tells them from other errors."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    return isinstance(err, RuntimeError) and "can't allocate memory" in str(err)
