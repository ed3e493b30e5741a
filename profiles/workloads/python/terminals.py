# Pseudo-terminals (the jail's own devpts): pty.fork, openpty, terminal modes and sizes.
import fcntl, os, pty, struct, sys, termios, tty
pid, fd = pty.fork()
if pid == 0:
    print("child", os.isatty(0)); sys.stdout.flush(); os._exit(3)
out = b""
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
print(out.strip(), os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
m, s = os.openpty()
fcntl.ioctl(s, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
print(os.ttyname(s).startswith("/dev/pts/"), os.get_terminal_size(s), termios.tcgetattr(s)[3] & termios.ECHO != 0)
os.write(m, b"line\n"); print(os.read(s, 100))
tty.setraw(s); os.write(m, b"raw"); print(os.read(s, 100))
termios.tcflush(s, termios.TCIOFLUSH)
