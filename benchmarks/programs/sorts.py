"""Sorting: recursive quicksort and merge sort, insertion sort on small runs, a heap."""
import random
import sys


def insertion(a, lo, hi):
    for i in range(lo + 1, hi):
        key = a[i]
        j = i - 1
        while j >= lo and a[j] > key:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = key


def quicksort(a, lo=0, hi=None):
    if hi is None:
        hi = len(a)
    if hi - lo <= 16:
        insertion(a, lo, hi)
        return
    pivot = a[(lo + hi) // 2]
    i, j = lo, hi - 1
    while i <= j:
        while a[i] < pivot:
            i += 1
        while a[j] > pivot:
            j -= 1
        if i <= j:
            a[i], a[j] = a[j], a[i]
            i += 1
            j -= 1
    quicksort(a, lo, j + 1)
    quicksort(a, i, hi)


def mergesort(a):
    if len(a) <= 1:
        return a
    mid = len(a) // 2
    left, right = mergesort(a[:mid]), mergesort(a[mid:])
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def heapsort(a):
    n = len(a)

    def sift(start, end):
        root = start
        while 2 * root + 1 < end:
            child = 2 * root + 1
            if child + 1 < end and a[child] < a[child + 1]:
                child += 1
            if a[root] < a[child]:
                a[root], a[child] = a[child], a[root]
                root = child
            else:
                return

    for start in range(n // 2 - 1, -1, -1):
        sift(start, n)
    for end in range(n - 1, 0, -1):
        a[0], a[end] = a[end], a[0]
        sift(0, end)
    return a


def main(scale):
    rng = random.Random(42)
    check = 0
    for _ in range(scale):
        data = [rng.randrange(1_000_000) for _ in range(60_000)]
        a = list(data)
        quicksort(a)
        b = mergesort(list(data))
        c = heapsort(list(data))
        assert a == b == c
        check += a[len(a) // 2]
    print(check)


main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
