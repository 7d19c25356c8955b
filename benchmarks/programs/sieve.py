"""Primes by sieve and by trial division: integer loops and branches."""
import sys


def sieve(limit):
    flags = [True] * (limit + 1)
    flags[0] = flags[1] = False
    p = 2
    while p * p <= limit:
        if flags[p]:
            for multiple in range(p * p, limit + 1, p):
                flags[multiple] = False
        p += 1
    return [i for i, is_prime in enumerate(flags) if is_prime]


def is_prime(n):
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    d = 3
    while d * d <= n:
        if n % d == 0:
            return False
        d += 2
    return True


def main(scale):
    total = 0
    for _ in range(scale):
        total += len(sieve(200_000))
        total += sum(1 for n in range(60_000) if is_prime(n))
    print(total)


main(int(sys.argv[1]) if len(sys.argv) > 1 else 4)
