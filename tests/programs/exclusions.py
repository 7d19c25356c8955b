"""Exclusions as coverage.py makes them: its defaults (TYPE_CHECKING, `...` bodies, also in a
docstring), pragmas on clauses, decorators and cases, and `# pragma: no branch`."""
from typing import TYPE_CHECKING
import sys

if TYPE_CHECKING:
    import os


def stub(x) -> int: ...


def f(x):
    try:
        y = 1 / x
    except ZeroDivisionError:  # pragma: no cover
        y = 0

        y += 1
    else:
        y += 2
    if x > 5:  # pragma: no branch
        y += 3
    while True:
        if y:
            break
    if x < 0:
        return -1
    else:  # pragma: no cover
        return y


@staticmethod  # pragma: no cover
def deco():
    return 1


def g(n):
    match n:
        case 1:
            return "one"
        case _:  # never
            return "other"  # pragma: no cover


def h(): return 1


class K:
    def m(self):
        raise NotImplementedError  # pragma: no cover

    def doc(self):
        """
        >>> h()
        ...
        """
        return 2


class Stubs:
    def long_stub(
        self, a: int, b: int = 0
    ) -> None: ...  # coverage.py's default `...` rule: the whole signature goes

    def commented(self):
        # pragma: no cover  (a comment alone: the function stays)
        return 3

    @staticmethod  # pragma: no cover
    def decorated():
        return 4


def signature(
    a,  # pragma: no cover
):
    return a


print(f(int(sys.argv[1]) if len(sys.argv) > 1 else 3), g(1), h(), K().doc(), Stubs().commented())
