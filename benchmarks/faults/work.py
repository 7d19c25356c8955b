# Loops 16 x 1,000 times, says so in a file (ready), then sleeps: a run to kill.
import pathlib, time

def work(n):
    total = 0
    for i in range(n):
        total += i
    return total

for k in range(16):
    work(1000)
pathlib.Path("ready").write_text("x")
time.sleep(120)
