"""Work on several threads; coverage must see all of them."""
import threading

results = []


def worker(n):
    total = 0
    for i in range(n):
        if i % 7 == 0:
            total += i
    results.append(total)


def unused():
    return 1


threads = [threading.Thread(target=worker, args=(1000 * k,)) for k in range(1, 4)]
for t in threads:
    t.start()
late = threading.Thread(target=worker, args=(10,))
late.start()
print(len(results) >= 0)
