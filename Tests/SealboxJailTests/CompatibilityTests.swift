import Foundation
import Glibc
import SealboxProfiles
import SealboxTestSupport
import Testing
@testable import SealboxJail

/// The compatibility battery (issue 21): small programs of the kinds agents write every day,
/// each run unjailed on the host, jailed cold and jailed from the warm pool, all under the
/// default profile, expecting the same stdout, stderr and exit code, and no violation.
///
/// The programs print facts, not values that differ between any two runs: relations ("the
/// child's pid is not ours"), sorted results, sizes. So nothing is normalised; a program that
/// prints a pid or a temporary name is a bug in the table, not something to hide. The host
/// run gets the jail's environment (PATH, HOME, LANG) and a working directory holding the same
/// files as the jail's /work; the jail's /usr is the host's, so both run the same binaries.
///
/// Every runtime the table needs must be installed (scripts/setup.sh installs them): a missing
/// one fails the battery, it never skips it.
@Suite("Compatibility battery", .needsRoot, .serialized)
struct CompatibilityTests {
    struct Program: Sendable, CustomTestStringConvertible {
        var name: String
        /// Executables the program needs (on the jail's PATH); a missing one is a failure.
        var needs: [String]
        var files: [String: String]
        var command: [String]
        /// A line the output must contain, jailed and unjailed: equal output alone would let a
        /// program that fails the same way everywhere pass.
        var expect: String
        /// The shipped profile learned for this kind of program (profiles/python.json,
        /// node.json), under which it must run the same too.
        var shippedProfile: String? = nil
        var testDescription: String { name }

        var seedFiles: [SeedFile] {
            files.sorted { $0.key < $1.key }.map { SeedFile(name: $0.key, contents: Array($0.value.utf8), executable: $0.key.hasSuffix(".sh")) }
        }
    }

    static func python(_ name: String, expect: String, _ code: String) -> Program {
        Program(name: name, needs: ["python3"], files: ["main.py": code], command: ["python3", "main.py"], expect: expect, shippedProfile: "python")
    }

    static func node(_ name: String, expect: String, _ code: String) -> Program {
        Program(name: name, needs: ["node"], files: ["main.js": code], command: ["node", "main.js"], expect: expect, shippedProfile: "node")
    }

    static func bash(_ name: String, needs: [String] = [], expect: String, _ script: String, files: [String: String] = [:]) -> Program {
        var all = files
        all["main.sh"] = script
        return Program(name: name, needs: ["bash"] + needs, files: all, command: ["bash", "main.sh"], expect: expect)
    }

    /// Everything the battery runs. Output lines are deterministic by construction.
    static let programs: [Program] = [
        python("python threads", expect: "[0, 499500, 1999000, 4498500]", #"""
            import threading, queue
            q = queue.Queue()
            threads = [threading.Thread(target=lambda n=n: q.put(sum(range(n * 1000)))) for n in range(4)]
            for t in threads: t.start()
            for t in threads: t.join()
            print(sorted(q.get() for _ in threads))
            lock, done = threading.Lock(), threading.Event()
            with lock: done.set()
            print("event", done.is_set(), threading.active_count())
            """#),
        python("python asyncio", expect: "[0, 1, 4, 9, 16] from-subprocess 0", #"""
            import asyncio
            async def square(i):
                await asyncio.sleep(0.01 * i)
                return i * i
            async def main():
                squares = await asyncio.gather(*(square(i) for i in range(5)))
                proc = await asyncio.create_subprocess_exec("echo", "from-subprocess", stdout=asyncio.subprocess.PIPE)
                out, _ = await proc.communicate()
                print(squares, out.decode().strip(), proc.returncode)
                server = await asyncio.start_server(lambda r, w: (w.write(b"pong"), w.close()), "127.0.0.1", 0)
                reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
                print(await reader.read(), await asyncio.wait_for(asyncio.to_thread(sum, range(10)), 10))
                writer.close()
                server.close()
            asyncio.run(main())
            """#),
        python("python subprocess pipes", expect: "['a', 'b', 'c'] 0 0", #"""
            import subprocess
            p1 = subprocess.Popen(["printf", "b\\na\\nc\\n"], stdout=subprocess.PIPE)
            p2 = subprocess.Popen(["sort"], stdin=p1.stdout, stdout=subprocess.PIPE)
            p1.stdout.close()
            out = p2.communicate()[0]
            print(out.decode().split(), p1.wait(), p2.returncode)
            r = subprocess.run(["sh", "-c", "echo err >&2; exit 3"], capture_output=True, text=True)
            print(r.returncode, r.stderr.strip())
            print(subprocess.check_output("echo $((6*7))", shell=True, text=True).strip())
            p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            print(p.communicate(b"x" * 200000)[0] == b"x" * 200000)
            """#),
        python("python sqlite3 in WAL mode", expect: "(100, 4950)", #"""
            import os, sqlite3
            db = sqlite3.connect("data.db")
            print(db.execute("pragma journal_mode=wal").fetchone()[0])
            db.execute("create table t(x)")
            db.executemany("insert into t values (?)", [(i,) for i in range(100)])
            db.commit()
            other = sqlite3.connect("data.db")
            print(other.execute("select count(*), sum(x) from t").fetchone())
            print(sorted(f for f in os.listdir(".") if f.startswith("data.db")))
            """#),
        python("python zip and tar", expect: "['hello.txt'] 600", #"""
            import io, tarfile, zipfile
            with zipfile.ZipFile("a.zip", "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("hello.txt", "hello " * 100)
            with zipfile.ZipFile("a.zip") as z:
                print(z.namelist(), len(z.read("hello.txt")))
            with tarfile.open("a.tar.gz", "w:gz") as t:
                data = b"tar data"
                info = tarfile.TarInfo("x/data.bin")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            with tarfile.open("a.tar.gz") as t:
                t.extractall("out")
            print(open("out/x/data.bin", "rb").read())
            """#),
        python("python signals and timers", expect: "['usr1', 'alarm', 'timer']", #"""
            import os, signal, threading, time
            got = []
            signal.signal(signal.SIGUSR1, lambda s, f: got.append("usr1"))
            signal.signal(signal.SIGALRM, lambda s, f: got.append("alarm"))
            os.kill(os.getpid(), signal.SIGUSR1)
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            deadline = time.monotonic() + 10
            while "alarm" not in got and time.monotonic() < deadline:
                time.sleep(0.01)
            timer = threading.Timer(0.02, lambda: got.append("timer"))
            timer.start()
            timer.join(10)
            print(got)
            """#),
        python("python mmap", expect: "b'hello' b'abc' b'shared'", #"""
            import mmap, os
            with open("m.bin", "wb") as f:
                f.write(b"\0" * 4096)
            with open("m.bin", "r+b") as f:
                m = mmap.mmap(f.fileno(), 4096)
                m[:5] = b"hello"
                m.flush()
                m.close()
            anon = mmap.mmap(-1, 8192)
            anon[:3] = b"abc"
            shared = mmap.mmap(-1, 4096, flags=mmap.MAP_SHARED)
            pid = os.fork()
            if pid == 0:
                shared[:6] = b"shared"
                os._exit(0)
            os.waitpid(pid, 0)
            print(open("m.bin", "rb").read(5), anon[:3], shared[:6])
            """#),
        python("python venv with pip", expect: "venv True pip 0", #"""
            import os, subprocess, sys
            subprocess.run([sys.executable, "-m", "venv", "env"], check=True)
            inside = subprocess.run(["env/bin/python", "-c", "import sys; print(sys.prefix != sys.base_prefix)"], capture_output=True, text=True)
            pip = subprocess.run(["env/bin/python", "-m", "pip", "--version"], capture_output=True, text=True)
            print("venv", inside.stdout.strip(), pip.stdout.split()[0], pip.returncode)
            """#),
        python("python multiprocessing Pool (fork)", expect: "[0, 1, 4, 9, 16, 25, 36, 49]", #"""
            import multiprocessing as mp
            def square(x):
                return x * x
            if __name__ == "__main__":
                with mp.get_context("fork").Pool(2) as pool:
                    print(pool.map(square, range(8)))
            """#),
        python("python multiprocessing Pool (spawn)", expect: "[0, 1, 4, 9, 16, 25, 36, 49]", #"""
            import multiprocessing as mp
            def square(x):
                return x * x
            if __name__ == "__main__":
                with mp.get_context("spawn").Pool(2) as pool:
                    print(pool.map(square, range(8)))
            """#),
        python("python multiprocessing forkserver", expect: "[0, 2, 4]", #"""
            import multiprocessing as mp
            def double(x):
                return 2 * x
            if __name__ == "__main__":
                with mp.get_context("forkserver").Pool(1) as pool:
                    print(pool.map(double, range(3)))
            """#),
        python("python multiprocessing Process + Queue, Lock, Value, Event", expect: "[0, 2, 4] 3 True [0, 0, 0]", #"""
            import multiprocessing as mp
            def work(q, n, lock, counter, ready):
                ready.wait(10)
                with lock:
                    counter.value += 1
                q.put(n * 2)
            if __name__ == "__main__":
                q, lock, counter, ready = mp.Queue(), mp.Lock(), mp.Value("i", 0), mp.Event()
                procs = [mp.Process(target=work, args=(q, n, lock, counter, ready)) for n in range(3)]
                for p in procs: p.start()
                ready.set()
                results = sorted(q.get(timeout=30) for _ in procs)
                for p in procs: p.join(30)
                print(results, counter.value, ready.is_set(), [p.exitcode for p in procs])
            """#),
        python("python concurrent.futures.ProcessPoolExecutor", expect: "[0, 1, 8, 27, 64]", #"""
            from concurrent.futures import ProcessPoolExecutor
            def cube(x):
                return x ** 3
            if __name__ == "__main__":
                with ProcessPoolExecutor(max_workers=2) as ex:
                    print(list(ex.map(cube, range(5))))
            """#),
        python("python multiprocessing Manager", expect: "{'a': 1, 'b': 2} [1, 2]", #"""
            import multiprocessing as mp
            def fill(d, l):
                d["b"] = 2
                l.append(2)
            if __name__ == "__main__":
                with mp.Manager() as m:
                    d, l = m.dict(a=1), m.list([1])
                    p = mp.Process(target=fill, args=(d, l))
                    p.start(); p.join(30)
                    print(dict(sorted(d.items())), list(l))
            """#),
        python("python multiprocessing.shared_memory", expect: "b'hello' 0 [1, 'two', 3.0]", #"""
            from multiprocessing import Process, shared_memory
            def child(name):
                s = shared_memory.SharedMemory(name=name)
                s.buf[:5] = b"hello"
                s.close()
            if __name__ == "__main__":
                shm = shared_memory.SharedMemory(create=True, size=1 << 20)
                p = Process(target=child, args=(shm.name,))
                p.start(); p.join(30)
                print(bytes(shm.buf[:5]), p.exitcode, end=" ")
                shm.close(); shm.unlink()
                sl = shared_memory.ShareableList([1, "two", 3.0])
                print(list(sl))
                sl.shm.close(); sl.shm.unlink()
            """#),
        python("python pty.fork and os.openpty", expect: "child isatty True True 7", #"""
            import fcntl, os, pty, struct, sys, termios, tty
            pid, fd = pty.fork()
            if pid == 0:
                print("child isatty", os.isatty(0), os.ttyname(0).startswith("/dev/pts/"))
                sys.stdout.flush()
                os._exit(7)
            out = b""
            while True:
                try:
                    chunk = os.read(fd, 1024)
                except OSError:  # EIO: the child's side closed
                    break
                if not chunk:
                    break
                out += chunk
            _, status = os.waitpid(pid, 0)
            print(out.decode().replace("\r\n", "\n").strip(), os.waitstatus_to_exitcode(status))
            m, s = os.openpty()
            print(os.ttyname(s).startswith("/dev/pts/"), os.isatty(m))
            fcntl.ioctl(s, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            print(os.get_terminal_size(s))
            os.write(m, b"ping\n")
            print(os.read(s, 100))
            tty.setraw(s)
            os.write(m, b"raw")
            print(os.read(s, 100))
            """#),
        python("python tempfile", expect: "1 True 100 /tmp", #"""
            import os, tempfile
            with tempfile.TemporaryDirectory() as d:
                with tempfile.NamedTemporaryFile(dir=d, delete=False) as f:
                    f.write(b"x")
                print(os.path.getsize(f.name), os.path.dirname(f.name) == d, end=" ")
            with tempfile.SpooledTemporaryFile(max_size=10) as f:
                f.write(b"y" * 100)
                f.seek(0)
                print(len(f.read()), tempfile.gettempdir())
            print(os.path.exists(d))
            """#),
        python("python locale and UTF-8", expect: "True 24 HÉLLO WÖRLD ✓ 日本", #"""
            import locale, sys
            locale.setlocale(locale.LC_ALL, "")
            print(sys.getfilesystemencoding(), sys.stdout.encoding, locale.getpreferredencoding(), locale.setlocale(locale.LC_ALL, None))
            s = "héllo wörld ✓ 日本"
            with open("u.txt", "w", encoding="utf-8") as f:
                f.write(s)
            with open("u.txt", encoding="utf-8") as f:
                print(f.read() == s, len(s.encode()), s.upper())
            print(sorted(["b", "a", "é"]), "naïve".encode("utf-8"))
            """#),
        python("python socket servers on 127.0.0.1", expect: "b'HELLO' b'ok /x' b'udp' b'unix'", #"""
            import http.server, os, socket, socketserver, threading, urllib.request
            class Upper(socketserver.BaseRequestHandler):
                def handle(self):
                    self.request.sendall(self.request.recv(100).upper())
            class Page(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200); self.end_headers(); self.wfile.write(b"ok " + self.path.encode())
                def log_message(self, *args):
                    pass
            results = []
            with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Upper) as srv:
                threading.Thread(target=srv.serve_forever, daemon=True).start()
                with socket.create_connection(srv.server_address, timeout=10) as c:
                    c.sendall(b"hello"); results.append(c.recv(100))
                srv.shutdown()
            web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
            threading.Thread(target=web.serve_forever, daemon=True).start()
            results.append(urllib.request.urlopen(f"http://127.0.0.1:{web.server_port}/x", timeout=10).read())
            web.shutdown()
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
            v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); v.sendto(b"udp", u.getsockname())
            results.append(u.recv(10))
            a, b = socket.socketpair(); a.sendall(b"unix"); results.append(b.recv(10))
            path = "s.sock"
            l = socket.socket(socket.AF_UNIX); l.bind(path); l.listen()
            c = socket.socket(socket.AF_UNIX); c.connect(path)
            print(*results, os.path.exists(path))
            """#),
        node("node worker_threads", expect: "[ 0, 10, 20 ] 6", #"""
            const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');
            if (isMainThread) {
              const shared = new Int32Array(new SharedArrayBuffer(4));
              const runs = [0, 1, 2].map(i => new Promise((resolve, reject) => {
                const w = new Worker(__filename, { workerData: { i, buffer: shared.buffer } });
                w.on('message', resolve); w.on('error', reject);
              }));
              Promise.all(runs).then(r => console.log(r.sort((a, b) => a - b), Atomics.load(shared, 0)));
            } else {
              Atomics.add(new Int32Array(workerData.buffer), 0, workerData.i + 1);
              parentPort.postMessage(workerData.i * 10);
            }
            """#),
        node("node child_process", expect: "fork 42", #"""
            const cp = require('child_process');
            if (process.argv[2] === 'child') {
              process.on('message', m => { process.send(m * 2); process.disconnect(); });
            } else {
              console.log(cp.execSync('echo $((6*7))').toString().trim());
              const r = cp.spawnSync('sh', ['-c', 'echo out; echo err >&2; exit 2']);
              console.log(r.status, r.stdout.toString().trim(), r.stderr.toString().trim());
              const sorted = new Promise(resolve => {
                const child = cp.spawn('sort', [], { stdio: ['pipe', 'pipe', 'inherit'] });
                let out = '';
                child.stdout.on('data', d => out += d);
                child.on('close', code => resolve([code, out.split('\n').filter(Boolean)]));
                child.stdin.end('b\na\nc\n');
              });
              const forked = new Promise(resolve => {
                const c = cp.fork(__filename, ['child']);
                c.on('message', m => resolve('fork ' + m));
                c.send(21);
              });
              Promise.all([sorted, forked]).then(([s, f]) => { console.log(...s); console.log(f); });
            }
            """#),
        node("node fs promises, zlib and http on 127.0.0.1", expect: "200 ok /x", #"""
            const fs = require('fs/promises'), os = require('os'), path = require('path'), zlib = require('zlib'), http = require('http');
            (async () => {
              const d = await fs.mkdtemp(path.join(os.tmpdir(), 'x-'));
              const f = path.join(d, 'a.txt');
              await fs.writeFile(f, 'hello');
              await fs.appendFile(f, ' world');
              console.log(await fs.readFile(f, 'utf8'), (await fs.readdir(d)).sort(), (await fs.stat(f)).size);
              await fs.rm(d, { recursive: true });
              console.log(zlib.gunzipSync(zlib.gzipSync('z'.repeat(1000))).length);
              const srv = http.createServer((q, s) => s.end('ok ' + q.url));
              await new Promise(r => srv.listen(0, '127.0.0.1', r));
              const body = await new Promise((resolve, reject) => http.get({ host: '127.0.0.1', port: srv.address().port, path: '/x' }, r => {
                let b = ''; r.on('data', c => b += c); r.on('end', () => resolve(r.statusCode + ' ' + b));
              }).on('error', reject));
              console.log(body);
              srv.close();
            })();
            """#),
        bash("bash background jobs, wait, kill %N, traps, coproc", expect: "killed: 143", #"""
            # Jobs that end only when told to, so no line depends on how fast the machine is.
            sleep 30 & a=$!
            sleep 30 & b=$!
            jobs -p | wc -l
            kill "$b"; wait "$b"; echo "b: $?"
            kill -STOP "$a"; kill -CONT "$a"; kill "$a"; wait "$a"; echo "a: $?"
            (exit 3) & wait $!; echo "status: $?"
            sleep 30 & kill %%; wait %%; echo "killed: $?"
            trap 'echo trapped USR1' USR1; kill -USR1 $$; echo after-trap
            coproc CO { read -r x; echo "co:$x"; }
            echo hi >&"${CO[1]}"; read -r y <&"${CO[0]}"; echo "$y"
            """#),
        bash("bash job control on a terminal (script, fg, bg)", needs: ["script"], expect: "out: fg=0", #"""
            # An interactive bash on the jail's own pty: job control needs a terminal. Its
            # job notices carry pids, so only the lines echoed here are kept. (fg must find the
            # job still running: a second is ample for the next command of the same line.)
            script -qec "bash --norc --noprofile -i -c 'sleep 1 & fg >/dev/null; echo out: fg=\$?; sleep 30 & kill %1; wait %1; echo out: killed=\$?; test -t 0 && echo out: tty'" /dev/null </dev/null | tr -d '\r' | grep '^out:'
            """#),
        bash("bash process substitution and /dev/fd, /dev/std*", expect: "got 1 got 2", #"""
            diff <(printf 'a\nb\n') <(printf 'a\nc\n'); echo "diff: $?"
            echo $(while read -r line; do echo "got $line"; done < <(printf '1\n2\n'))
            cat <(echo via-dev-fd)
            tee >(wc -c > count.txt) <<< "hello" >/dev/null; wait $!; cat count.txt
            echo piped | cat /dev/stdin
            echo to-stdout > /dev/stdout
            echo to-stderr > /dev/stderr
            exec 3< <(echo three); cat /dev/fd/3
            test -c /dev/null && test -c /dev/urandom && test -c /dev/tty && test -d /dev/pts && test -d /dev/shm && echo devices
            head -c 8 /dev/urandom | wc -c; head -c 4 /dev/zero | od -An -tx1
            """#),
        Program(name: "gcc and cc: compile and run (threads, fork, pipes, POSIX semaphores, shm and message queues, a pty)", needs: ["gcc", "cc"],
                files: ["main.sh": """
                    gcc -O2 -Wall -Werror -o prog prog.c -lpthread -lutil && ./prog && cc -o prog2 prog.c -lpthread -lutil && ./prog2 | tail -1
                    """, "prog.c": #"""
                    #include <fcntl.h>
                    #include <mqueue.h>
                    #include <pthread.h>
                    #include <pty.h>
                    #include <semaphore.h>
                    #include <stdio.h>
                    #include <string.h>
                    #include <sys/mman.h>
                    #include <sys/wait.h>
                    #include <unistd.h>

                    static int total;
                    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
                    static void *add(void *arg) {
                        pthread_mutex_lock(&lock);
                        total += *(int *)arg;
                        pthread_mutex_unlock(&lock);
                        return NULL;
                    }

                    int main(void) {
                        pthread_t t[4];
                        int n[4] = {1, 2, 3, 4};
                        for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, add, &n[i]);
                        for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
                        printf("threads %d\n", total);

                        int p[2];
                        if (pipe(p) != 0) return 1;
                        pid_t pid = fork();
                        if (pid == 0) { close(p[0]); (void)!write(p[1], "forked", 6); _exit(5); }
                        close(p[1]);
                        char buf[16] = {0};
                        (void)!read(p[0], buf, sizeof buf - 1);
                        int status;
                        waitpid(pid, &status, 0);
                        printf("%s %d\n", buf, WEXITSTATUS(status));

                        /* Names with our pid: unjailed, these live in the host's /dev/shm and
                           ipc namespace, where another run of the battery may be at work. */
                        char sem_name[64], shm_name[64], mq_name[64];
                        snprintf(sem_name, sizeof sem_name, "/sbx-compat-sem-%d", (int)getpid());
                        snprintf(shm_name, sizeof shm_name, "/sbx-compat-shm-%d", (int)getpid());
                        snprintf(mq_name, sizeof mq_name, "/sbx-compat-mq-%d", (int)getpid());
                        sem_t *sem = sem_open(sem_name, O_CREAT | O_EXCL, 0600, 1);
                        if (sem == SEM_FAILED) { perror("sem_open"); return 1; }
                        sem_wait(sem); sem_post(sem);
                        sem_close(sem); sem_unlink(sem_name);
                        int fd = shm_open(shm_name, O_CREAT | O_EXCL | O_RDWR, 0600);
                        if (fd < 0 || ftruncate(fd, 4096) != 0) { perror("shm_open"); return 1; }
                        char *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                        strcpy(mem, "shm ok");
                        printf("semaphore ok, %s\n", mem);
                        munmap(mem, 4096); close(fd); shm_unlink(shm_name);
                        struct mq_attr attr = { .mq_maxmsg = 4, .mq_msgsize = 16 };
                        mqd_t q = mq_open(mq_name, O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
                        char msg[16] = {0};
                        if (q == (mqd_t)-1 || mq_send(q, "queued", 7, 0) != 0 || mq_receive(q, msg, sizeof msg, NULL) < 0) { perror("mq"); return 1; }
                        mq_close(q); mq_unlink(mq_name);
                        printf("message queue %s\n", msg);

                        int master, slave;
                        char name[64];
                        if (openpty(&master, &slave, name, NULL, NULL) != 0) { perror("openpty"); return 1; }
                        printf("pty %s\n", strncmp(name, "/dev/pts/", 9) == 0 ? "ok" : name);
                        printf("done\n");
                        return 0;
                    }
                    """#],
                command: ["bash", "main.sh"], expect: "semaphore ok, shm ok"),
    ]

    /// Limits for every run: the defaults, with room for slow machines.
    static let limits = Limits(timeoutMs: 120_000)

    /// The battery's own executor, for its warm pool: one prepared jail that fits `limits`
    /// (the timeout is not part of a pooled jail; everything else is the default), started
    /// and stopped by each test so that none is left for other suites to find.
    static let pooledExecutor: Result<Executor, JailError> = Result { () throws(JailError) in
        try Executor(configuration: .init(dataDirectory: Binaries.repoRoot))
    }


    static func missing(_ needs: [String]) -> [String] {
        needs.filter { HostRun.resolve($0) == nil }
    }

    @Test("every runtime the battery needs is installed (scripts/setup.sh): none is skipped")
    func runtimesInstalled() {
        let all = Set(Self.programs.flatMap(\.needs) + RefusedByDesign.cases.flatMap(\.needs)).sorted()
        #expect(Self.missing(all).isEmpty, "missing on this host: \(Self.missing(all)); scripts/setup.sh installs them")
    }

    @Test("same output jailed (cold and pooled, default profile; cold under the language's shipped profile) as unjailed", arguments: programs)
    func sameOutput(_ program: Program) async throws {
        try #require(Self.missing(program.needs).isEmpty, "\(program.name) needs \(Self.missing(program.needs)); scripts/setup.sh installs them")
        let host = try await HostRun.run(program.command, files: program.seedFiles, environment: HostRun.jailEnvironment, timeoutMs: Self.limits.timeoutMs)
        #expect(!host.timedOut && host.exitCode == 0, "\(program.name) fails unjailed: \(host.exitCode) \(host.stderr)")
        #expect(host.stdout.contains(program.expect), "\(program.name) unjailed: \(host.stdout)")

        let spec = JailSpec(command: program.command, files: program.seedFiles, limits: Self.limits)
        let cold = try await Fixture.jail().run(spec)
        let executor = try Self.pooledExecutor.get()
        let pool = try executor.startPool(JailPool.Configuration(size: 1, limits: Limits()))
        defer { executor.stopPool() }
        #expect(pool.waitUntilFull(timeout: 60), "pool did not fill: \(pool.stats)")
        let warm = try await executor.run(spec)
        #expect(warm.phases?.warm == true, "\(program.name): the pooled run did not take a prepared jail")

        var runs = [("cold", cold), ("pooled", warm)]
        if let shipped = program.shippedProfile {
            runs.append(("profile \(shipped)", try await Fixture.jail().run(JailSpec(command: program.command, files: program.seedFiles,
                                                                                      limits: Self.limits, profile: .catalog(shipped)))))
        }
        for (label, r) in runs {
            #expect(r.status == .ok, "\(program.name) \(label): \(r.status) \(r.error ?? "") \(r.stderr)")
            #expect(r.violations.isEmpty, "\(program.name) \(label): the profile denied \(r.violations)")
            #expect(r.stdout == host.stdout, "\(program.name) \(label) stdout differs:\njailed:\n\(r.stdout)\nunjailed:\n\(host.stdout)")
            #expect(r.stderr == host.stderr, "\(program.name) \(label) stderr differs:\njailed:\n\(r.stderr)\nunjailed:\n\(host.stderr)")
            #expect(r.exitCode == host.exitCode)
        }
    }
}

/// What cannot work in a jail by design, with the reason; each is run, jailed and unjailed, to
/// show that it fails in the jail the documented way and works outside (so the list is true).
struct RefusedByDesign: Sendable, CustomTestStringConvertible {
    var name: String
    var reason: String
    var needs: [String]
    var files: [String: String]
    var command: [String]
    /// What the unjailed run prints.
    var unjailed: String
    var jailed: @Sendable (JailResult) -> Bool
    var testDescription: String { name }

    static let cases: [RefusedByDesign] = [
        RefusedByDesign(
            name: "network interfaces through netlink (socket.if_nameindex, getifaddrs)",
            reason: "AF_NETLINK sockets are denied by every shipped profile: netlink reaches kernel subsystems (routing, audit, netfilter) far beyond listing interfaces, and the jail has only lo anyway",
            needs: ["python3"], files: ["main.py": #"""
                import socket
                try:
                    print(any(name == "lo" for _, name in socket.if_nameindex()))
                except PermissionError as e:
                    print("PermissionError", e.errno)
                """#],
            command: ["python3", "main.py"], unjailed: "True\n",
            jailed: { $0.stdout == "PermissionError 1\n" && $0.violations.contains { $0.syscall == "socket" && $0.errno == EPERM } }),
        RefusedByDesign(
            name: "ptrace (debuggers, strace)",
            reason: "ptrace reads and writes other processes' memory and registers; the default profile denies it (and the jail has no CAP_SYS_PTRACE)",
            needs: ["python3"], files: ["main.py": #"""
                import ctypes, os
                libc = ctypes.CDLL(None, use_errno=True)
                pid = os.fork()
                if pid == 0:
                    r = libc.ptrace(0, 0, None, None)  # PTRACE_TRACEME
                    os._exit(0 if r == 0 else ctypes.get_errno())
                _, status = os.waitpid(pid, 0)
                print("traceme", os.waitstatus_to_exitcode(status))
                """#],
            command: ["python3", "main.py"], unjailed: "traceme 0\n",
            jailed: { $0.stdout == "traceme \(EPERM)\n" && $0.violations.contains { $0.syscall == "ptrace" } }),
        RefusedByDesign(
            name: "a 32-bit syscall (int $0x80) from a 64-bit program",
            reason: "the compat (i386) entry points are a second kernel ABI with its own bugs; no shipped profile lists it, so such a call kills the program, and the result names it",
            needs: ["gcc"], files: ["main.sh": "gcc -o i386 i386.c && exec ./i386", "i386.c": #"""
                #include <stdio.h>
                int main(void) {
                    long ret;
                    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "cc", "r8", "r9", "r10", "r11");  /* i386 getpid */
                    printf("i386 getpid %s\n", ret > 0 ? "ok" : "failed");
                    return 0;
                }
                """#],
            command: ["bash", "main.sh"], unjailed: "i386 getpid ok\n",
            jailed: { r in
                r.status == .seccompViolation && r.signal == SIGSYS && r.stdout.isEmpty
                    && r.violations == [.init(syscall: "getpid (x86)", count: 1, action: "kill", abi: "x86")]
            }),
    ]
}

extension CompatibilityTests {
    @Test("refused by design: fails in the jail as documented, works unjailed", arguments: RefusedByDesign.cases)
    func refusedByDesign(_ c: RefusedByDesign) async throws {
        try #require(Self.missing(c.needs).isEmpty, "\(c.name) needs \(Self.missing(c.needs))")
        let files = c.files.sorted { $0.key < $1.key }.map { SeedFile(name: $0.key, contents: Array($0.value.utf8)) }
        let host = try await HostRun.run(c.command, files: files, environment: HostRun.jailEnvironment, timeoutMs: Self.limits.timeoutMs)
        #expect(host.exitCode == 0 && host.stdout == c.unjailed, "\(c.name) unjailed: \(host.exitCode) \(host.stdout) \(host.stderr)")
        let r = try await Fixture.jail().run(JailSpec(command: c.command, files: files, limits: Self.limits))
        #expect(c.jailed(r), "\(c.name) jailed: \(r.status) \(r.stdout) \(r.stderr) \(r.violations)")
    }
}
