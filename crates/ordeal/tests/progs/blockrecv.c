/* `blockrecv ROUNDS`: a socketpair shared by a parent and its child. Each round the child
 * blocks in read(); the parent writes only once it sees the child asleep in that read
 * (/proc/PID/stat state S, /proc/PID/syscall 0), so every receive starts before its send.
 * Exits 0 when every round's bytes arrived. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Whether `pid` sleeps in read(2). */
static int blocked_in_read(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || p[2] != 'S')
        return 0;
    snprintf(path, sizeof path, "/proc/%d/syscall", pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strncmp(buf, "0 ", 2) == 0;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return 1;
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        close(sv[0]);
        char buf[16];
        for (int r = 0; r < rounds; r++)
            if (read(sv[1], buf, 5) != 5)
                return 1;
        return 0;
    }
    close(sv[1]);
    for (int r = 0; r < rounds; r++) {
        /* At most 10 s for the child to block. */
        int waited = 0;
        while (!blocked_in_read(pid)) {
            if (++waited > 10000) {
                kill(pid, SIGKILL);
                return 3;
            }
            usleep(1000);
        }
        if (write(sv[0], "hello", 5) != 5)
            return 1;
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return 4;
    printf("rounds %d\n", rounds);
    return 0;
}
