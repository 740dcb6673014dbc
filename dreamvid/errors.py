"""Errors meant for the user: the CLI prints ``str(error)`` on one line, no traceback."""


class DreamvidError(Exception):
    """A failure the user can act on. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class InputError(DreamvidError):
    """Bad input (schedule, file, option): exit status 2, like argparse."""

    exit_code = 2
