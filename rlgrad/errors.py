"""The error rlgrad raises when its input is wrong.

rlgrad refuses bad input (a tensor of the wrong shape, a hyperparameter out of range, a config
field that does not exist, a preset file that is not JSON) with a :class:`BadInputError` whose
message names the function or field, what it expected and what it got. It is a ``ValueError``, so
``except ValueError`` still catches it; its own class lets a caller tell an input rlgrad refused on
purpose from a bug. The ``rlgrad`` command line reports a BadInputError as one line with exit
status 2, and lets every other exception (a ValueError from inside NumPy or PyTorch, say) surface
with its traceback.
"""

from __future__ import annotations


class BadInputError(ValueError):
    """An input rlgrad refuses on purpose; the message says which one and what it must be.

    >>> try:
    ...     raise BadInputError("gae(): 'lam' must lie in [0, 1]; got 1.5")
    ... except ValueError as error:
    ...     print(type(error).__name__, "-", error)
    BadInputError - gae(): 'lam' must lie in [0, 1]; got 1.5
    """
