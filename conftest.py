"""The examples of README.md and docs/*.md as tests (Sybil; how they run: tests/docs_examples.py).

`python3 -m pytest -q` collects them with the rest (pyproject's testpaths name the pages);
`python3 -m pytest -q README.md docs` runs only them.
"""

import pytest
from sybil import Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.markdown import CodeBlockParser, SkipParser

from tests.docs_examples import PAGES, Checkout, InCheckout, run_shell


@pytest.fixture(scope="module")
def docs_checkout():
    """A page's clean copy of the repository: its examples run in it, in order."""
    checkout = Checkout()
    yield checkout
    checkout.remove()


pytest_collect_file = Sybil(
    parsers=[
        CodeBlockParser(language="bash", evaluator=run_shell),
        CodeBlockParser(language="python", evaluator=InCheckout(PythonEvaluator())),
        SkipParser(),
    ],
    patterns=PAGES,
    fixtures=["docs_checkout"],
).pytest()
