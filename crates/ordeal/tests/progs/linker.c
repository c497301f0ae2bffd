/* A node that publishes DIR/msg with link(2): write DIR/msg.tmp, [fsync it], link it to
 * DIR/msg, unlink DIR/msg.tmp, fsync the directory.
 *
 *   linker DIR fsync   the temp file is fsynced before the link
 *   linker DIR bare    it is not
 *
 * A start that finds DIR/msg checks it holds the whole message (exit 1 otherwise: recovery
 * failed); a start that does not publishes it. Then "ready", and it waits to be killed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char MSG[] = "the published message, whole\n";

static void die(const char *what) {
    perror(what);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: linker DIR fsync|bare\n");
        return 2;
    }
    int durable = strcmp(argv[2], "fsync") == 0;
    char msg[4096], tmp[4096];
    snprintf(msg, sizeof msg, "%s/msg", argv[1]);
    snprintf(tmp, sizeof tmp, "%s/msg.tmp", argv[1]);
    int fd = open(msg, O_RDONLY);
    if (fd >= 0) {
        char buf[sizeof MSG + 1];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n != (ssize_t)strlen(MSG) || memcmp(buf, MSG, n) != 0) {
            fprintf(stderr, "corrupt msg: %zd bytes\n", n);
            return 1;
        }
    } else {
        unlink(tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0 || write(fd, MSG, strlen(MSG)) != (ssize_t)strlen(MSG))
            die("write");
        if (durable && fsync(fd) != 0)
            die("fsync");
        close(fd);
        if (link(tmp, msg) != 0 || unlink(tmp) != 0)
            die("link");
        int d = open(argv[1], O_RDONLY | O_DIRECTORY);
        if (d < 0 || fsync(d) != 0)
            die("fsync dir");
        close(d);
    }
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
