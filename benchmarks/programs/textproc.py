"""Text processing: tokenizing, counting, a small JSON-like encoder, string building."""
import sys


def words(text):
    out = []
    word = []
    for ch in text:
        if ch.isalnum():
            word.append(ch.lower())
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return out


def encode(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{" + ",".join(encode(k) + ":" + encode(v) for k, v in value.items()) + "}"
    return "[" + ",".join(encode(v) for v in value) + "]"


def main(scale):
    base = ("The quick brown fox jumps over the lazy dog; 42 dogs, 7 foxes! "
            "Pack my box with five dozen liquor jugs. ") * 400
    size = 0
    for _ in range(scale):
        counts = {}
        for w in words(base):
            counts[w] = counts.get(w, 0) + 1
        doc = {"counts": counts, "top": sorted(counts, key=counts.get)[-5:],
               "flags": [True, False, None], "n": len(counts)}
        size += len(encode([doc] * 50))
    print(size)


main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
