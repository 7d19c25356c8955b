import sys

from shapes.geometry import area

kind = sys.argv[1] if len(sys.argv) > 1 else "square"
print(area(kind, 2))
sys.exit(3 if kind == "circle" else 0)
