# multiprocessing in every form (POSIX semaphores and shared memory in /dev/shm), with each
# start method: Pool, Process + Queue/Lock/Value/Event, ProcessPoolExecutor, Manager,
# shared_memory and ShareableList.
import concurrent.futures, multiprocessing as mp
from multiprocessing import shared_memory

def square(x):
    return x * x

def work(q, lock, counter, ready, n):
    ready.wait(10)
    with lock:
        counter.value += 1
    q.put(n)

def fill(d, name):
    d["b"] = 2
    s = shared_memory.SharedMemory(name=name)
    s.buf[:2] = b"ok"
    s.close()

if __name__ == "__main__":
    for method in ("fork", "spawn", "forkserver"):
        with mp.get_context(method).Pool(2) as pool:
            print(method, pool.map(square, range(4)))
    q, lock, counter, ready = mp.Queue(), mp.Lock(), mp.Value("i", 0), mp.Event()
    procs = [mp.Process(target=work, args=(q, lock, counter, ready, n)) for n in range(2)]
    for p in procs: p.start()
    ready.set()
    print(sorted(q.get(timeout=30) for _ in procs), [p.join(30) or p.exitcode for p in procs], counter.value)
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        print(list(ex.map(square, range(3))))
    shm = shared_memory.SharedMemory(create=True, size=4096)
    with mp.Manager() as m:
        d = m.dict(a=1)
        p = mp.Process(target=fill, args=(d, shm.name)); p.start(); p.join(30)
        print(dict(d), bytes(shm.buf[:2]))
    shm.close(); shm.unlink()
    sl = shared_memory.ShareableList([1, "two"]); print(list(sl)); sl.shm.close(); sl.shm.unlink()
