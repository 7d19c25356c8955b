"""Count the words of a text file and print the most frequent ones.

    python wordfreq.py FILE [TOP]
"""

import sys
from collections import Counter

STOP = {"the", "a", "an", "and", "of", "to", "in", "is", "it", "that"}


def words(text):
    word = []
    for ch in text:
        if ch.isalpha() or (ch == "'" and word):
            word.append(ch.lower())
        elif word:
            yield "".join(word)
            word = []
    if word:
        yield "".join(word)


def top(counts, n):
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ranked[:n]


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        print(f"wordfreq: {e.strerror}: {argv[1]}", file=sys.stderr)
        return 1
    n = int(argv[2]) if len(argv) > 2 else 5
    counts = Counter(w for w in words(text) if w not in STOP)
    for word, count in top(counts, n):
        print(f"{count:5d}  {word}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
