# Threads, subprocesses, fork, signals, timers, select.
import concurrent.futures, os, selectors, signal, subprocess, sys, threading, time
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    print(sum(pool.map(lambda x: x * x, range(10))))
t = threading.Thread(target=time.sleep, args=(0.01,)); t.start(); t.join()
print(subprocess.run(["ls", "/"], capture_output=True, text=True).returncode)
print(subprocess.check_output([sys.executable, "-c", "print('child')"], text=True).strip())
pid = os.fork()
if pid == 0:
    os._exit(7)
print(os.waitpid(pid, 0)[1] >> 8)
signal.signal(signal.SIGALRM, lambda *a: None); signal.setitimer(signal.ITIMER_REAL, 0.01); time.sleep(0.05)
r, w = os.pipe(); sel = selectors.DefaultSelector(); sel.register(r, selectors.EVENT_READ); os.write(w, b"x")
print(len(sel.select(1)), os.cpu_count() > 0, time.monotonic() > 0)
