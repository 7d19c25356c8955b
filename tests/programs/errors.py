"""Exceptions raised, caught, re-raised; finally; with."""
import contextlib


class Boom(Exception):
    pass


def risky(n):
    if n == 3:
        raise Boom(n)
    return n


def guarded(n):
    try:
        value = risky(n)
    except Boom as e:
        value = -1
        if e.args:
            value = -2
    except (TypeError, ValueError):
        value = -3
    else:
        value += 10
    finally:
        n = 0
    return value


@contextlib.contextmanager
def managed(log):
    log.append("enter")
    try:
        yield log
    finally:
        log.append("exit")


def use_with(flag):
    log = []
    with managed(log) as got:
        if flag:
            got.append("flag")
    with open(__file__) as fh:
        first = fh.readline()
    return log, first


def suppress():
    with contextlib.suppress(KeyError):
        {}["missing"]
        never = 1
    return True


for n in range(5):
    guarded(n)
use_with(True)
use_with(False)
suppress()
try:
    guarded(None)
except TypeError:
    pass
