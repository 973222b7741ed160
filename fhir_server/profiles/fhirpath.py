"""Compiling invariants with fhirpathpy, refusing what it would silently misread.

fhirpathpy's parser swallows syntax errors (its ANTLR error listener does nothing), so a typo
in a constraint would evaluate to nonsense at every write. Here the expression is first parsed
with a listener that raises, then compiled against the R4 model (choice types need it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from antlr4 import CommonTokenStream, InputStream
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy import compile as compile_fhirpath
from fhirpathpy.models import models
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

Evaluator = Callable[[Any, dict[str, Any]], list[Any]]


class _Raise(ErrorListener):  # type: ignore[misc]
    def syntaxError(
        self, recognizer: Any, symbol: Any, line: int, column: int, msg: str, e: Any
    ) -> None:
        raise ValueError(f"column {column}: {msg}")


def compile_invariant(expression: str) -> Evaluator:
    """A compiled FHIRPath expression (R4 model); ValueError for a syntax error."""
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(_Raise())
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(_Raise())
    parser.expression()
    if parser.getCurrentToken().type != FHIRPathParser.EOF:
        raise ValueError(f"unexpected text after the expression: {expression!r}")
    evaluate: Evaluator = compile_fhirpath(expression, models["r4"])
    return evaluate
