// sealbox-spawner: clones jails on sealbox's behalf (see sbx_spawner_start in sbx_spawn.h).
// Started by sealbox only, as `sealbox-spawner <control fd> <sealbox pid>`, with an empty
// environment; it is a small process, so cloning it is cheap, and it dies with sealbox.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sbx_spawn.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "sealbox-spawner: started by sealbox only (usage: sealbox-spawner CONTROL_FD SEALBOX_PID)\n");
        return 2;
    }
    char *end = NULL;
    long control = strtol(argv[1], &end, 10);
    if (*end != 0 || control < 3) return 2;
    long sealbox = strtol(argv[2], &end, 10);
    if (*end != 0 || sealbox <= 1) return 2;
    // Die with sealbox, and make sure it did not die before this was armed.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
        fprintf(stderr, "sealbox-spawner: PR_SET_PDEATHSIG: %s\n", strerror(errno));
        return 1;
    }
    if (getppid() != (pid_t)sealbox) return 1;
    // Nothing but stdio and the control socket stays open.
    if (syscall(SYS_close_range, (unsigned int)control + 1, ~0U, 0U) < 0 ||
        (control > 3 && syscall(SYS_close_range, 3U, (unsigned int)control - 1, 0U) < 0)) {
        fprintf(stderr, "sealbox-spawner: close_range: %s\n", strerror(errno));
        return 1;
    }
    int rc = sbx_spawner_serve((int)control, (pid_t)sealbox);
    return rc == 0 ? 0 : 1;
}
