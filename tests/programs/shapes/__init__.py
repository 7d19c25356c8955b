from .geometry import area


def describe(n):
    return "many" if n > 2 else "few"
