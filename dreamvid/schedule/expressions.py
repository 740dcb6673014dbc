"""Safe arithmetic expressions for keyframe values: parsed once, evaluated per frame with numpy.

A keyframeable value may be a formula of the frame and the music::

    zoom: "1.01 + 0.04*bass"
    rotate: "0: (0), 120: (2*sin(2*pi*s/4))"      # Deforum keyframes whose values are formulas

Names an expression may use (nothing else exists for it):

* variables ``t`` (frame in the video), ``f`` (frame in the segment), ``s`` (seconds, ``t/fps``),
  ``T`` (frames in the video), ``max_f`` (the last frame's index, ``T - 1``, as Deforum names it),
  ``seed`` (the schedule's seed), ``fps``, and the audio features at the frame's time, each 0..1:
  ``rms bass mid treble onset beat`` (see :mod:`dreamvid.media.audio`);
* constants ``pi`` and ``e``;
* functions ``sin cos tan abs min max clamp floor ceil round exp log sqrt``
  (``min``/``max`` take 2 or more arguments, ``clamp(x, lo, hi)`` is ``min(max(x, lo), hi)``,
  ``log`` is the natural logarithm, ``round`` rounds half up like dreamvid's integer settings).

Operators: ``+ - * / // % **``, unary ``+ -``, brackets, and comparisons ``< <= > >= == !=``
(1.0 when true, 0.0 when false: ``1 + 0.5*(t >= 60)`` is a step at frame 60).

Safety: the text is checked before Python's parser sees it -- at most :data:`MAX_LENGTH`
characters, ASCII letters, digits, spaces and ``+-*/%().,<>=!_`` only (no quotes, brackets,
braces, colons or backslashes, so no strings, lists, subscripts, lambdas, slices or
f-strings can even be written), brackets nested at most :data:`MAX_DEPTH` deep -- then
``ast.parse`` builds a tree that is walked iteratively against a whitelist (constants,
the names above, the operators above, calls of the functions above with positional
arguments) and a depth bound, and compiled to nested closures over numpy functions.
User text is never passed to ``eval``/``exec``/``compile``. Sub-expressions without
variables are folded when parsing, so ``1/0``, ``log(-1)`` or ``10**400`` are refused
then; an exponent that is a constant must satisfy ``|exponent| <= MAX_EXPONENT``
(``9**9**9``, ``10**10000`` are refused; nothing big is ever computed).

Evaluation never raises for maths: with variables, a domain error gives NaN (``log(t-5)``
at ``t < 5``, ``sqrt(-1)``, ``0/0``), a division by zero or an overflow gives ``inf``
(``1/(t-5)`` at ``t = 5``, ``exp(t)`` for large ``t``). The caller checks the values with
``np.isfinite`` and its own range, and names the key, the frame and the value.

Refusals are :class:`ExpressionError` (a ``ValueError``) with a one-line message; the
schedule prefixes the file and key path.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Union

import numpy as np

__all__ = [
    "AUDIO_VARIABLES",
    "CONSTANTS",
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_FRAME_DIGITS",
    "MAX_KEYFRAME_STRING",
    "MAX_LENGTH",
    "VARIABLES",
    "Expression",
    "ExpressionError",
    "compile_expression",
    "evaluate_keyframes",
    "frame_variables",
    "is_keyframe_string",
    "looks_like_deforum_seed",
    "parse_keyframe_string",
    "parse_value",
    "split_entries",
]

# --- limits and names (the one place they are set) ---------------------------------------
MAX_LENGTH = 1000  # characters in one expression; a formula is a line, not a program
MAX_KEYFRAME_STRING = 200_000  # characters in a Deforum string (every frame of a few minutes keyed)
MAX_DEPTH = 100  # nesting of brackets and of the syntax tree (a sum of n terms is n deep)
MAX_EXPONENT = 100.0  # |exponent| of a power whose exponent is a constant
MAX_FRAME_DIGITS = 18  # digits of a keyframe's frame number (Python cannot even read some numbers of 4301)

FRAME_VARIABLES = ("t", "f", "s", "T", "max_f", "seed", "fps")  # max_f, seed: Deforum's names
AUDIO_VARIABLES = ("rms", "bass", "mid", "treble", "onset", "beat")
VARIABLES = FRAME_VARIABLES + AUDIO_VARIABLES
CONSTANTS = {"pi": math.pi, "e": math.e}


def _round_half_up(x):
    return np.floor(np.add(x, 0.5))


def _min(*args):
    out = args[0]
    for a in args[1:]:
        out = np.minimum(out, a)
    return out


def _max(*args):
    out = args[0]
    for a in args[1:]:
        out = np.maximum(out, a)
    return out


def _clamp(x, lo, hi):
    return np.minimum(np.maximum(x, lo), hi)


# name -> (fewest arguments, most arguments or None for any, numpy implementation)
FUNCTIONS: dict[str, tuple[int, int | None, Callable]] = {
    "sin": (1, 1, np.sin),
    "cos": (1, 1, np.cos),
    "tan": (1, 1, np.tan),
    "abs": (1, 1, np.abs),
    "min": (2, None, _min),
    "max": (2, None, _max),
    "clamp": (3, 3, _clamp),
    "floor": (1, 1, np.floor),
    "ceil": (1, 1, np.ceil),
    "round": (1, 1, _round_half_up),
    "exp": (1, 1, np.exp),
    "log": (1, 1, np.log),
    "sqrt": (1, 1, np.sqrt),
}

_BINARY = {
    ast.Add: ("+", np.add),
    ast.Sub: ("-", np.subtract),
    ast.Mult: ("*", np.multiply),
    ast.Div: ("/", np.true_divide),
    ast.FloorDiv: ("//", np.floor_divide),
    ast.Mod: ("%", np.mod),  # Python's sign convention: the result has the divisor's sign
    ast.Pow: ("**", np.power),
}
_UNARY = {ast.UAdd: np.positive, ast.USub: np.negative}
_COMPARE = {
    ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
    ast.Eq: np.equal, ast.NotEq: np.not_equal,
}
_ALLOWED_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \t\r\n+-*/%().,<>=!_")
_CHAR_HINTS = {  # why a character cannot appear
    "'": "strings are not allowed", '"': "strings are not allowed",
    "[": "lists and subscripts are not allowed", "]": "lists and subscripts are not allowed",
    "{": "sets, dicts and f-strings are not allowed", "}": "sets, dicts and f-strings are not allowed",
    ":": "lambdas, slices and assignments are not allowed",
    "^": "use ** for powers", "@": "matrix products are not allowed",
    "&": "bitwise operators are not allowed", "|": "bitwise operators are not allowed",
    "~": "bitwise operators are not allowed", "\\": "backslashes are not allowed",
    ";": "one expression only", "#": "comments are not allowed",
}
_NODE_HINTS = {  # syntax the character check lets through, refused by the tree check
    ast.Attribute: "attribute access is not allowed; expected names of variables and functions, e.g. sin(t)",
    ast.IfExp: "conditional expressions (if/else) are not allowed; expected a comparison, e.g. 0.5*(t >= 60)",
    ast.BoolOp: "and/or are not allowed; expected comparisons multiplied, e.g. (t > 10)*(t < 20)",
    ast.GeneratorExp: "comprehensions are not allowed; expected arithmetic on numbers, variables and functions",
    ast.Starred: "starred arguments are not allowed; expected plain arguments, e.g. max(t, 1)",
    ast.Await: "await is not allowed; expected arithmetic on numbers, variables and functions",
}
_NUMBER = re.compile(r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*")

Value = Union[float, np.ndarray]


class ExpressionError(ValueError):
    """An expression that is refused; ``str()`` is one line.

    ``key`` is the keyframe (frame number as written) of a Deforum entry, else None.
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def _names(names: Sequence[str]) -> str:
    return ", ".join(names)


# --- checking --------------------------------------------------------------------------


def _check_text(text: str) -> None:
    """Refuse, before parsing, text that is too long, has a forbidden character or deep brackets."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is {len(text)} characters long; expected at most {MAX_LENGTH}")
    depth = 0
    for i, ch in enumerate(text):
        if ch not in _ALLOWED_CHARS:
            shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"
            hint = f" ({_CHAR_HINTS[ch]})" if ch in _CHAR_HINTS else ""
            raise ExpressionError(f"character {shown} at column {i + 1} is not allowed{hint}; "
                                  "expected ASCII letters, digits, spaces and + - * / % ( ) . , < > = !")
        if ch == "(":
            depth += 1
            if depth > MAX_DEPTH:
                raise ExpressionError(f"brackets nested more than {MAX_DEPTH} deep; expected at most {MAX_DEPTH}")
        elif ch == ")":
            depth -= 1


def _check_tree(tree: ast.Expression) -> frozenset[str]:
    """Walk the tree without recursion: only whitelisted nodes, at most MAX_DEPTH deep.
    Returns the variables it reads."""
    used: set[str] = set()
    todo: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested more than {MAX_DEPTH} deep; expected at most {MAX_DEPTH}")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                what = "complex numbers are" if isinstance(node.value, complex) else f"{node.value!r} is"
                raise ExpressionError(f"{what} not allowed; expected numbers")
            continue
        if isinstance(node, ast.Name):
            if node.id in FUNCTIONS:
                raise ExpressionError(f"{node.id} is a function; expected a call, e.g. {node.id}(t)")
            if node.id not in VARIABLES and node.id not in CONSTANTS:
                raise ExpressionError(f"unknown name {node.id!r}; expected one of "
                                      f"{_names(VARIABLES + tuple(CONSTANTS))} or a function call")
            if node.id in VARIABLES:
                used.add(node.id)
            continue
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise ExpressionError(f"operator {_op_text(node.op)} is not allowed; expected + - * / // % **")
            todo += [(node.left, depth + 1), (node.right, depth + 1)]
        elif isinstance(node, ast.UnaryOp):
            if type(node.op) not in _UNARY:
                raise ExpressionError(f"operator {_op_text(node.op)} is not allowed; expected unary + or -")
            todo.append((node.operand, depth + 1))
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _COMPARE:
                    raise ExpressionError(f"{_op_text(op)} is not allowed; expected comparisons < <= > >= == !=")
            todo += [(c, depth + 1) for c in (node.left, *node.comparators)]
        elif isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name is None:
                raise ExpressionError("only the functions " + _names(tuple(FUNCTIONS)) + " can be called; "
                                      "expected a function name before the brackets, e.g. sin(t)")
            if name not in FUNCTIONS:
                raise ExpressionError(f"unknown function {name!r}; expected one of {_names(tuple(FUNCTIONS))}")
            if node.keywords:
                raise ExpressionError(f"{name}() takes no keyword arguments; expected positional ones, e.g. {name}(t)")
            lo, hi, _ = FUNCTIONS[name]
            n = len(node.args)
            for a in node.args:
                if type(a) in _NODE_HINTS:
                    raise ExpressionError(_NODE_HINTS[type(a)])
            if n < lo or (hi is not None and n > hi):
                want = f"{lo}" if lo == hi else f"{lo} or more"
                raise ExpressionError(f"{name}() takes {want} argument{'s' if want != '1' else ''}, got {n}; expected {want}")
            todo += [(a, depth + 1) for a in node.args]
        else:
            hint = _NODE_HINTS.get(type(node))
            if hint is None:
                hint = f"{type(node).__name__} is not allowed; expected arithmetic on numbers, variables and functions"
            raise ExpressionError(hint)
    return frozenset(used)


def _op_text(op: ast.AST) -> str:
    return {
        ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^",
        ast.BitAnd: "&", ast.Not: "'not'", ast.Invert: "~", ast.Is: "'is'", ast.IsNot: "'is not'",
        ast.In: "'in'", ast.NotIn: "'not in'",
    }.get(type(op), type(op).__name__)


# --- compiling to closures ---------------------------------------------------------------

_Fn = Callable[[Mapping[str, Value]], Value]


class _Folded:
    """A compile-time constant (a sub-expression without variables), kept as np.float64."""

    __slots__ = ("value",)

    def __init__(self, value: float):
        self.value = np.float64(value)


def _fold(fn: Callable, *args: _Folded) -> _Folded:
    """Compute a constant sub-expression now, refusing division by zero, domain errors, overflow."""
    try:
        with np.errstate(all="raise"):
            value = fn(*(a.value for a in args))
    except FloatingPointError as err:
        text = str(err)
        why = ("division by zero" if "divide" in text else "overflow" if "overflow" in text
               else "an invalid operation (log or sqrt of a negative number, x % 0 ...)")
        raise ExpressionError(f"a constant part of the expression gives {why}; expected a finite number") from None
    value = np.float64(value)
    if not np.isfinite(value):
        raise ExpressionError("a constant part of the expression is not a finite number; expected a finite number")
    return _Folded(value)


def _compile(node: ast.AST) -> _Fn | _Folded:
    """Closure computing ``node`` from the variables, or a _Folded constant. The tree was checked."""
    if isinstance(node, ast.Constant):
        try:
            value = float(node.value)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            raise ExpressionError(f"number {str(node.value)[:20]} is too large; expected a finite number")
        return _Folded(value)
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return _Folded(CONSTANTS[node.id])
        name = node.id
        return lambda env: env[name]
    if isinstance(node, ast.UnaryOp):
        return _apply(_UNARY[type(node.op)], [_compile(node.operand)])
    if isinstance(node, ast.BinOp):
        symbol, fn = _BINARY[type(node.op)]
        left, right = _compile(node.left), _compile(node.right)
        if symbol == "**" and isinstance(right, _Folded) and abs(right.value) > MAX_EXPONENT:
            raise ExpressionError(f"exponent {right.value:g} is too large; expected at most {MAX_EXPONENT:g} "
                                  "in absolute value")
        return _apply(fn, [left, right])
    if isinstance(node, ast.Compare):
        parts = [_compile(c) for c in (node.left, *node.comparators)]
        ops = [_COMPARE[type(op)] for op in node.ops]

        def compare(*values):
            out = ops[0](values[0], values[1])
            for i, op in enumerate(ops[1:], 1):
                out = np.logical_and(out, op(values[i], values[i + 1]))
            return np.multiply(out, 1.0)  # bool -> 1.0/0.0, array or scalar

        return _apply(compare, parts)
    if isinstance(node, ast.Call):
        return _apply(FUNCTIONS[node.func.id][2], [_compile(a) for a in node.args])
    raise AssertionError(f"unchecked node {type(node).__name__}")  # pragma: no cover - _check_tree refuses it


def _apply(fn: Callable, parts: list[_Fn | _Folded]) -> _Fn | _Folded:
    """``fn`` of the parts: folded now if they are all constants, else a closure."""
    if all(isinstance(p, _Folded) for p in parts):
        return _fold(fn, *parts)
    getters = [(lambda env, v=p.value: v) if isinstance(p, _Folded) else p for p in parts]
    if len(getters) == 1:
        (a,) = getters
        return lambda env: fn(a(env))
    if len(getters) == 2:
        a, b = getters
        return lambda env: fn(a(env), b(env))
    return lambda env: fn(*(g(env) for g in getters))


# --- public API ---------------------------------------------------------------------------


class Expression:
    """A checked, compiled expression. ``source`` is its text, ``variables`` the names it reads.

    Picklable and comparable by source (it is recompiled when unpickled), so a schedule holding
    expressions can be copied, sent to worker processes and fingerprinted by its text.
    """

    __slots__ = ("source", "variables", "_fn")

    def __init__(self, source: str, variables: frozenset[str], fn: _Fn | _Folded):
        self.source = source
        self.variables = variables
        self._fn = fn

    @property
    def needs_audio(self) -> bool:
        """True when it reads an audio feature (the schedule then needs an audio file)."""
        return not self.variables.isdisjoint(AUDIO_VARIABLES)

    def evaluate(self, variables: Mapping[str, float | np.ndarray]) -> Value:
        """The value for these variables: floats give a float; arrays (one entry per frame,
        any mix with floats) give a float64 array of their broadcast shape.

        Maths never raises here: NaN for a domain error, ``inf`` for a division by zero or an
        overflow (check with ``np.isfinite``). ExpressionError if a variable it reads is missing.
        """
        env = {}
        for name in self.variables:
            if name not in variables:
                why = " (audio features need the schedule's audio file)" if name in AUDIO_VARIABLES else ""
                known = f"only {_names(tuple(sorted(variables)))}" if variables else "no variables"
                raise ExpressionError(f"{self.source!r} reads {name!r}, which has no value here{why}; expected {known}")
            value = variables[name]
            env[name] = np.asarray(value, dtype=np.float64) if isinstance(value, np.ndarray) else np.float64(value)
        if isinstance(self._fn, _Folded):
            result = self._fn.value
        else:
            with np.errstate(all="ignore"):
                result = self._fn(env)
        shape = np.broadcast_shapes(*(np.shape(variables[n]) for n in variables)) if variables else ()
        if shape == () and np.ndim(result) == 0:
            return float(result)
        return np.array(np.broadcast_to(np.asarray(result, dtype=np.float64), shape))

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.source == self.source

    def __hash__(self) -> int:
        return hash(("Expression", self.source))

    def __reduce__(self):
        return (compile_expression, (self.source,))


def looks_like_deforum_seed(expr: Expression) -> bool:
    """Whether ``expr`` reads ``s`` the way a Deforum string reads its seed: ``s`` alone (Deforum's
    ``0:(s)``), or ``s`` beside Deforum's ``max_f``. dreamvid's ``s`` is seconds; its seed is ``seed``."""
    return "s" in expr.variables and ("max_f" in expr.variables or expr.source.strip("() \t") == "s")


def compile_expression(text: str) -> Expression:
    """Check and compile ``text``; ExpressionError (one line) if it is refused.

    The checks run before ``ast.parse`` (length, characters, bracket depth), then on the tree
    (whitelist, depth), then constant parts are folded (refusing 1/0, log(-1), overflow) and
    powers with a constant exponent are bounded. Nothing of the text is executed.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expected an expression as text, got a {type(text).__name__}")
    _check_text(text)
    source = text.strip()
    if not source:
        raise ExpressionError("empty expression; expected a number or a formula like 1.0 + 0.05*sin(t/10)")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as err:
        where = f" at column {err.offset}" if err.offset else ""
        raise ExpressionError(f"not a valid expression ({err.msg}{where}); expected a formula like "
                              "1.0 + 0.05*sin(t/10)") from None
    except (ValueError, MemoryError, RecursionError) as err:  # pragma: no cover - the text checks prevent these
        raise ExpressionError(f"not a valid expression ({type(err).__name__}); expected a formula like "
                              "1.0 + 0.05*sin(t/10)") from None
    used = _check_tree(tree)
    return Expression(source, used, _compile(tree.body))


def parse_value(value: float | int | str) -> float | Expression:
    """A plain keyframe value: a number stays a number (fast path), a string that is a number or a
    formula without variables becomes a float, any other string an :class:`Expression`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and len(value) <= MAX_LENGTH and _NUMBER.fullmatch(value):
        return float(value)
    expr = compile_expression(value)
    if not expr.variables:
        return expr.evaluate({})
    return expr


_KEYFRAME_START = re.compile(r"\s*-?\d+\s*:")
_ENTRY = re.compile(r"\s*(-?\d+)\s*:\s*\((.*)\)\s*", re.DOTALL)
_EXAMPLE = "'0: (1.02), 120: (1.0 + 0.05*sin(t/10))'"


def is_keyframe_string(text: str) -> bool:
    """True when ``text`` starts like Deforum keyframes (``frame:``); a formula never does."""
    return bool(_KEYFRAME_START.match(text))


def split_entries(text: str) -> list[str]:
    """Split on commas outside brackets (those inside belong to calls such as ``max(a, b)``)."""
    pieces, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ExpressionError(f"unmatched ')' at column {i + 1}; expected entries like {_EXAMPLE}")
        elif ch == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    if depth:
        raise ExpressionError(f"unclosed '('; expected entries like {_EXAMPLE}")
    pieces.append(text[start:])
    if len(pieces) > 1 and not pieces[-1].strip():
        pieces.pop()  # a trailing comma is fine
    return pieces


def _show(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= 40 else text[:37] + "...")


def parse_keyframe_string(text: str) -> list[tuple[int, float | Expression]]:
    """Deforum keyframes ``"0: (1.02), 120: (1.0 + 0.05*sin(t/10))"`` -> ``[(0, 1.02), (120, Expression)]``.

    Entries are split on commas outside brackets. Each value is one bracketed expression; a
    number (or a formula without variables) stays a float. Frames are returned as written
    (negative, unordered or duplicate frames are the caller's to report). ExpressionError,
    with ``key`` set to the entry's frame when one entry is at fault.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"expected keyframes as text, got a {type(text).__name__}")
    if len(text) > MAX_KEYFRAME_STRING:
        raise ExpressionError(f"keyframe string is {len(text)} characters long; expected at most "
                              f"{MAX_KEYFRAME_STRING}")
    out: list[tuple[int, float | Expression]] = []
    for piece in split_entries(text):
        m = _ENTRY.fullmatch(piece)
        if m is None:
            raise ExpressionError(f"bad keyframe entry {_show(piece)}; expected 'frame: (value)' entries like "
                                  f"{_EXAMPLE}")
        key, inner = m.group(1), m.group(2)
        if len(key) > MAX_FRAME_DIGITS:
            raise ExpressionError(f"keyframe {key[:12]}... has {len(key)} digits; expected a frame number in the "
                                  "segment", key=key[:12] + "...")
        depth = 0
        for ch in inner:  # the value's '(' must close at the entry's last ')': "0: (1) + (2)" is two values
            depth += ch == "("
            depth -= ch == ")"
            if depth < 0:
                raise ExpressionError(f"bad keyframe entry {_show(piece)}; expected 'frame: (value)' entries "
                                      f"separated by commas, like {_EXAMPLE}")
        try:
            value = parse_value(inner)
        except ExpressionError as err:
            raise ExpressionError(f"keyframe {key}: {err}", key=key) from None
        out.append((int(key), value))
    return out


def frame_variables(start: int, frames: int, total: int, fps: float,
                    audio: Mapping[str, np.ndarray] | None = None, seed: int = 0) -> dict[str, float | np.ndarray]:
    """The variables for the ``frames`` frames of a segment starting at video frame ``start``.

    ``t`` = start + f, ``f`` = 0..frames-1, ``s`` = t / fps (float64 arrays), ``T`` = total,
    ``max_f`` = total - 1, ``seed``, ``fps``; with ``audio`` (the dict from
    :func:`dreamvid.media.audio.features`, one value per video frame) also each audio feature's
    slice for these frames.
    """
    f = np.arange(frames, dtype=np.float64)
    t = f + start
    out: dict[str, float | np.ndarray] = {"t": t, "f": f, "s": t / fps, "T": float(total), "max_f": float(total - 1),
                                          "seed": float(seed), "fps": float(fps)}
    if audio is not None:
        for name in AUDIO_VARIABLES:
            out[name] = np.asarray(audio[name][start:start + frames], dtype=np.float64)
    return out


def evaluate_keyframes(points: Sequence[tuple[int, float | Expression]], frames: int,
                       interpolation: str = "linear",
                       variables: Mapping[str, float | np.ndarray] | None = None) -> np.ndarray:
    """Values at frames 0..frames-1 of a segment, one float64 per frame, Deforum's way.

    ``points``: (frame, value) with increasing frames below ``frames``; ``variables`` as from
    :func:`frame_variables` (needed only if a value is an Expression). A number key
    interpolates (``linear``, ``step``, or ``smooth``: smoothstep ``t*t*(3-2t)``)
    towards the next key's value at that key; an expression key is evaluated at every frame
    from its key up to the next key; before the first key the value is the first key's value
    at that key. NaN/inf from an expression are passed on for the caller's range check.
    """
    if not points:
        raise ValueError("no keyframes")
    keys = [int(k) for k, _ in points]
    if any(b <= a for a, b in zip(keys, keys[1:])) or keys[0] < 0 or keys[-1] >= frames:
        raise ValueError(f"keyframes {keys} must increase within 0..{frames - 1}")
    if interpolation not in ("linear", "step", "smooth"):
        raise ValueError(f"unknown interpolation {interpolation!r}")
    k = np.arange(frames)
    values: list[float | np.ndarray] = []
    for _, v in points:
        if isinstance(v, Expression):
            values.append(np.broadcast_to(v.evaluate(variables or {}), (frames,)))
        else:
            values.append(float(v))

    def at_key(i: int) -> float:
        v = values[i]
        return float(v[keys[i]]) if isinstance(v, np.ndarray) else v

    out = np.empty(frames, dtype=np.float64)
    out[: keys[0]] = at_key(0)
    for i, (k0, v0) in enumerate(zip(keys, values)):
        k1 = keys[i + 1] if i + 1 < len(keys) else frames
        if isinstance(v0, np.ndarray):
            out[k0:k1] = v0[k0:k1]
        elif i + 1 == len(keys) or interpolation == "step":
            out[k0:k1] = v0
        else:
            v1 = at_key(i + 1)
            t = (k[k0:k1] - k0) / (k1 - k0)
            if interpolation == "smooth":
                t = t * t * (3.0 - 2.0 * t)
            out[k0:k1] = v0 + (v1 - v0) * t
    return out
