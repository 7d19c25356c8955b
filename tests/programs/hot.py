"""A program whose time goes mostly to one function: slow() does four times fast()'s work."""
import sys


def work(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def slow(n):
    return work(4 * n)


def fast(n):
    return work(n)


def main(rounds):
    for _ in range(rounds):
        slow(20_000)
        fast(20_000)


main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
