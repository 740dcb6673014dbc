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


# what an allocation failure says where it is not a typed OutOfMemoryError: the CPU allocator,
# cuDNN and cuBLAS (their workspaces), and a CUDA launch or runtime call that ran out
_OUT_OF_MEMORY_TEXTS = ("can't allocate memory", "CUDA out of memory", "CUDA error: out of memory",
                        "CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED", "cudaErrorMemoryAllocation")
_GPU_TEXTS = _OUT_OF_MEMORY_TEXTS[1:]


def causes(err: BaseException):
    """``err`` and what it wraps, once each: its ``__cause__`` and ``__context__`` and, where
    a wrapper keeps it so (torch.compile's BackendCompilerFailed), its ``inner_exception``."""
    seen, todo = set(), [err]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__, getattr(e, "inner_exception", None)]


def out_of_memory_kind(err: BaseException) -> str | None:
    """"GPU" or "CPU" when ``err`` or an error it wraps is a failed allocation, else None."""
    for e in causes(err):
        if type(e).__name__ == "OutOfMemoryError":
            return "GPU"
        if isinstance(e, MemoryError):
            return "CPU"
        if isinstance(e, RuntimeError):
            text = str(e)
            if any(t in text for t in _GPU_TEXTS):
                return "GPU"
            if _OUT_OF_MEMORY_TEXTS[0] in text:
                return "CPU"
    return None


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA out of memory (torch's OutOfMemoryError, or cuDNN/cuBLAS failing to allocate their
    workspace), or a failed CPU allocation (a MemoryError, or the plain RuntimeError torch
    raises when the allocator fails), itself or wrapped in another error (a compile error that
    ran out while autotuning): the one place that tells them from other errors."""
    return out_of_memory_kind(err) is not None


def fit_advice(size: str = "size") -> str:
    """The usual advice when a frame does not fit in memory; ``size``: how the user sets it."""
    return f"expected a size that fits: choose a smaller {size} (on a GPU, `tile: auto` splits frames that do not fit)"


def out_of_memory_message(memory: BaseException | str, doing: str = "", advice: str | None = None) -> str:
    """The one wording of running out of memory: ``out of <GPU|CPU> memory[ <doing>]; <advice>``.

    ``memory``: the error (see :func:`is_out_of_memory`; torch's OutOfMemoryError and cuDNN's
    or cuBLAS's are the GPU's, any other the CPU's), or "GPU" / "CPU" where the error is not kept. ``doing``: what ran
    out, e.g. "rendering a 640x360 frame". ``advice``: what to do, :func:`fit_advice` unless given.
    """
    if isinstance(memory, BaseException):
        memory = "GPU" if out_of_memory_kind(memory) == "GPU" else "CPU"
    doing = f" {doing}" if doing else ""
    return f"out of {memory} memory{doing}; {fit_advice() if advice is None else advice}"


def first_line(err: BaseException | str, default: str | None = None) -> str:
    """The first line of an error's text that is not blank, stripped: the part of a long
    message (a traceback-like text, a list of problems) that fits in one line of ours.

    A KeyError's text is its key (``str()`` would quote it). ``default`` when there is no
    such line: else the error's type name (an empty string for a text).
    """
    if isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    else:
        text = str(err)
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    if default is not None:
        return default
    return "" if isinstance(err, str) else type(err).__name__
