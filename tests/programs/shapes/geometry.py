import math


def area(kind, size):
    if kind == "square":
        return size * size
    elif kind == "circle":
        return math.pi * size ** 2
    raise ValueError(kind)
