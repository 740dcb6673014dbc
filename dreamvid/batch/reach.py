"""Reaching a Ray cluster before ``ray.init`` joins it: is one there, does it want a token,
is ours its token. Every answer that stops the batch is one line (:class:`InputError`).

Ray (since 2.59) turns token authentication on for a cluster started with ``ray start
--head`` when a token exists, and ``ray.init()`` makes one for a local instance. A driver
that connects by address uses a token only with ``RAY_AUTH_MODE=token``; without it Ray
retries for 20 s and then reports that no cluster was found. So :func:`prepare` asks the
cluster's GCS itself first (one call, the cluster ID, within :data:`PROBE_S`):

- nothing listens at the address: "no Ray cluster found", at once;
- the cluster wants a token and one is where Ray looks for it (``RAY_AUTH_TOKEN``, the file
  ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``): token mode is turned on for this process
  (``RAY_AUTH_MODE=token``, as Ray does itself for ``auto``) and the token is checked the same
  way; a token is sent only to a cluster that asked for one;
- it wants a token and there is none here, or ours is not its: one line saying how to give it.

The questions go through three of Ray's internals (``canonicalize_bootstrap_address``, which
``ray.init`` uses to find "auto"; ``GcsClient``; ``Config``), each used only where it imports:
a Ray without one leaves the answer to ``ray.init``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from pathlib import Path

from dreamvid.core.defaults import RAY_PROBE_S as PROBE_S
from dreamvid.core.errors import InputError, first_line

GET_TOKEN = "`ray get-auth-token` on the head node prints it"
GIVE_TOKEN = ("put it in ~/.ray/auth_token on this machine, or set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH, a file "
              "holding it)")  # fmt: skip


def prepare(address: str, logs: bool = False) -> str:
    """Check that the cluster at ``address`` ("auto" or HOST:PORT) can be joined, turning
    token mode on when it asks for a token we have; returns the address to pass to
    ``ray.init``. "local" and Ray Client addresses (``ray://``) are left to Ray."""
    check_token_file()
    client = address.startswith("ray://") or (address == "auto" and os.environ.get("RAY_ADDRESS", "").startswith("ray://"))
    if address == "local" or client:
        return address
    gcs = gcs_address(address, logs)
    if gcs is None:  # Ray has no way to tell us: let ray.init decide
        return address
    listening(address, gcs)
    answer, detail = ask(gcs, logs)
    if answer == "token" and os.environ.get("RAY_AUTH_MODE") is None and token_source():  # as Ray does for auto
        enable_token_mode()
        answer, detail = ask(gcs, logs)
    if answer == "token":
        raise InputError(token_problem(address if address == gcs else f"{address} ({gcs})"))
    if answer == "none":
        raise InputError(f"--ray {address}: no Ray cluster answered at {gcs} ({detail}); expected the address of a "
                         "running cluster's head (`ray start --head` prints it), or --ray local for a private one")
    return gcs


def check_token_file() -> None:
    """A ``RAY_AUTH_TOKEN_PATH`` that cannot be read makes Ray abort the process (a C++ crash,
    not an exception) as soon as it looks for a token: one line instead."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not path or os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return
    try:
        empty = not Path(path).expanduser().read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        why = getattr(err, "strerror", None) or first_line(err)
        raise InputError(f"RAY_AUTH_TOKEN_PATH={path}: cannot read the Ray token ({why}); expected "
                         f"a file holding the cluster's token ({GET_TOKEN}), or unset the variable") from None
    if empty:
        raise InputError(f"RAY_AUTH_TOKEN_PATH={path}: the file is empty; expected the cluster's token ({GET_TOKEN})")


def token_source() -> str | None:
    """Where Ray finds a token, in its order (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``,
    ``~/.ray/auth_token``), or None when there is none."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return os.environ["RAY_AUTH_TOKEN_PATH"]  # readable and not empty: check_token_file
    default = Path.home() / ".ray" / "auth_token"
    try:
        return str(default) if default.read_text().strip() else None
    except (OSError, UnicodeDecodeError):
        return None


def token_mode() -> bool:
    return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"


def enable_token_mode() -> None:
    """``RAY_AUTH_MODE=token`` for this process; Ray reads its config once, so it is read again."""
    os.environ["RAY_AUTH_MODE"] = "token"
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):  # a Ray without token authentication
        pass


def token_problem(address: str) -> str:
    """The line for a cluster that refused us for want of its token."""
    source = token_source() if token_mode() else None
    if source:
        return (f"--ray {address}: the Ray cluster refused the token from {source}: it is not this cluster's; "
                f"expected the head node's token ({GET_TOKEN}): {GIVE_TOKEN}")
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None and not token_mode():
        return (f"--ray {address}: the Ray cluster wants its authentication token, but RAY_AUTH_MODE={mode} here; "
                f"expected RAY_AUTH_MODE=token (or unset) and the head node's token ({GET_TOKEN}): {GIVE_TOKEN}")
    return (f"--ray {address}: the Ray cluster wants its authentication token and there is none here; expected the "
            f"head node's token ({GET_TOKEN}): {GIVE_TOKEN}")


def gcs_address(address: str, logs: bool = False) -> str | None:
    """HOST:PORT of the cluster's GCS as ``ray.init`` would find it ("auto": ``RAY_ADDRESS``
    or the last cluster this machine started), or None when this Ray cannot say."""
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:
        return None
    try:
        with _ray_logs(logs):
            return canonicalize_bootstrap_address(address)
    except ConnectionError as err:
        raise InputError(f"--ray {address}: no Ray cluster found ({first_line(err)}); start one with "
                         "`ray start --head`, or use --ray local for a private one on this machine") from None
    except ValueError as err:
        raise InputError(f"--ray {address}: {first_line(err)}; expected auto, local, HOST:PORT or "
                         "ray://HOST:PORT") from None


def listening(address: str, gcs: str) -> None:
    """Something accepts connections at ``gcs``, or one line saying nothing does."""
    host, _, port = gcs.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_S).close()
    except (OSError, ValueError) as err:
        why = err.strerror or str(err) if isinstance(err, OSError) else str(err)
        raise InputError(f"--ray {address}: no Ray cluster found at {gcs} ({why or type(err).__name__}); start "
                         "one with `ray start --head`, or use --ray local for a private one on this machine") from None


def ask(gcs: str, logs: bool = False) -> tuple[str, str]:
    """Ask the GCS at ``gcs`` for the cluster's ID: ("ok" | "token" | "none", why). Ray's
    client waits 40 s for a GCS that does not answer; this waits :data:`PROBE_S`."""
    from ray import exceptions

    try:
        from ray._raylet import GcsClient
    except ImportError:  # a Ray without it: ray.init will say
        return "ok", ""
    auth_error = getattr(exceptions, "AuthenticationError", ())  # a Ray without token authentication: none
    answer = ["none", f"no answer within {PROBE_S:g} s"]

    def call() -> None:
        try:
            GcsClient(address=gcs).cluster_id  # noqa: B018 -- fetching the ID is the question
            answer[:] = ["ok", ""]
        except auth_error as err:
            answer[:] = ["token", first_line(err)]
        except Exception as err:  # noqa: BLE001 -- any other failure: no cluster that answers
            answer[:] = ["none", first_line(err)]

    with _quiet_stderr(not logs):  # Ray's client logs its failed attempt on stderr itself
        thread = threading.Thread(target=call, name="dreamvid-ray-probe", daemon=True)
        thread.start()
        thread.join(PROBE_S)
    return answer[0], answer[1]


@contextlib.contextmanager
def _quiet_stderr(quiet: bool):
    """Ray's C++ client writes to file descriptor 2 itself: send it to /dev/null meanwhile."""
    if not quiet:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _ray_logs(logs: bool):
    """Ray's Python warnings (e.g. "found multiple active Ray instances") only with ``logs``."""
    logger = logging.getLogger("ray")
    level = logger.level
    if not logs:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
