# What else agents write every day: mmap (shared, flushed), archives with their mtimes, signals
# to itself, sqlite in WAL mode, pipelines through coreutils, a virtual environment.
import io, mmap, os, signal, sqlite3, subprocess, sys, tarfile, tempfile, zipfile
d = tempfile.mkdtemp(); os.chdir(d)
with open("m.bin", "wb") as f: f.write(b"\0" * 4096)
with open("m.bin", "r+b") as f:
    m = mmap.mmap(f.fileno(), 4096); m[:2] = b"hi"; m.flush(); m.close()
with zipfile.ZipFile("a.zip", "w", zipfile.ZIP_DEFLATED) as z: z.writestr("x.txt", "x" * 100)
with tarfile.open("a.tar.gz", "w:gz") as t:
    info = tarfile.TarInfo("y/z.txt"); info.size = 2; t.addfile(info, io.BytesIO(b"ok"))
with tarfile.open("a.tar.gz") as t: t.extractall("out")
got = []
signal.signal(signal.SIGUSR1, lambda *a: got.append(1)); os.kill(os.getpid(), signal.SIGUSR1)
db = sqlite3.connect("w.db"); db.execute("pragma journal_mode=wal"); db.execute("create table t(x)"); db.commit()
p1 = subprocess.Popen(["printf", "b\\na\\n"], stdout=subprocess.PIPE)
print(subprocess.run(["sort"], stdin=p1.stdout, capture_output=True).stdout.split(), got, os.getppid() > 0, len(os.sched_getaffinity(0)) > 0)
subprocess.run([sys.executable, "-m", "venv", "env"], check=True)
print(subprocess.run(["env/bin/python", "-m", "pip", "--version"], capture_output=True).returncode)
