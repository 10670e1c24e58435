"""A Python script engine for Qlik's script functions (ScriptEval, ScriptAggr and their `Str`
and `Ex` variants), following the conventions of Qlik's own full-script-support example:

- `args[i]` is the i-th parameter's column, a list with one value per row: a float for a
  numeric parameter, a str for a string one, and for a dual one a pair of lists
  `[numbers, texts]`;
- the script is one Python expression; its value is the answer. A list answers one row per
  element, anything else one row; a row that is itself a list or tuple answers several columns.

A script may also be statements that assign `result`, for what one expression cannot say. The
modules `math` and `statistics` are ready to use. Compiled scripts are kept by their text.
"""

__all__ = ["Scripts"]


class Scripts:
    """The `scripts` interface: names the language; evaluations live in `scripts.py`."""

    def language(self) -> str:
        return "python"
