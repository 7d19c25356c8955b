"""One-line functions and classes: their line is the def's and the body's, two exits."""
def h(): return 1
class A: x = 1
async def a(): return 2
for i in range(2):
    def k(): return i
    k()
print(h())


def deco(c):
    return c


class Outer:
    @deco
    class Inner: pass  # its code begins at the decorator: the exit arcs name that line
