"""Unpickling that refuses every global but a fixed list: the one home of that security boundary.

A pickle is a program: its ``GLOBAL``/``STACK_GLOBAL`` opcodes (and ``INST``, ``OBJ``, ``EXT*``)
name any importable callable (``os.system``, ``builtins.eval``, ...) and ``REDUCE`` calls it.
`RestrictedUnpickler` resolves only the ``(module, name)`` pairs it is given, each to an object
the caller chose (usually a checked stand-in), and refuses any other before anything is called.
Used for the ResNet-18 ``.pth`` weights (`capstone.photos.weight_files`) and the descriptor pickle
(`capstone.data.coco_files`).

>>> import io, pickle
>>> data = pickle.dumps(print)
>>> RestrictedUnpickler(io.BytesIO(data), {}, "this file").load()  # doctest: +ELLIPSIS
Traceback (most recent call last):
    ...
capstone.common.unpickle.UnsafePickle: refusing ... the global builtins.print, which this file ...
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping

__all__ = ["RestrictedUnpickler", "UnsafePickle"]


class UnsafePickle(ValueError):
    """A pickle that asks for a global outside the allowed list (the message names it)."""


class RestrictedUnpickler(pickle.Unpickler):
    """A `pickle.Unpickler` whose globals are exactly ``allowed``.

    Parameters
    ----------
    file : binary file
    allowed : Mapping[tuple[str, str], object]
        ``(module, name) -> object`` to use for it. Give fresh stand-ins for each load when
        they hold state: a pickle can set attributes (``BUILD``) on what it unpickles.
    purpose : str
        What the file holds, for the refusal: "a ResNet-18 state dict".

    Attributes
    ----------
    unsafe : type
        The exception raised for a refused global (subclasses may narrow it).
    """

    unsafe: type[Exception] = UnsafePickle

    def __init__(self, file, allowed: Mapping[tuple[str, str], object], purpose: str):
        super().__init__(file)
        self.allowed = allowed
        self.purpose = purpose

    def find_class(self, module: str, name: str):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise self.unsafe(
                f"refusing to load: the pickle asks for the global {module}.{name}, which "
                f"{self.purpose} never needs (a pickle can run arbitrary code)"
            ) from None
