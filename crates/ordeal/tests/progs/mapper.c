/* A node that writes DIR/m through a shared mapping: create, size it to 4096 bytes, fsync
 * the directory, map it MAP_SHARED, copy a message in, then
 *
 *   mapper DIR msync   msync(MS_SYNC) the page
 *   mapper DIR none    nothing (the kernel writes it back some time: no call shows it)
 *   mapper DIR late    msync(MS_SYNC), then a second write through the mapping, not msync'ed
 *
 * A start that finds DIR/m checks it is empty or holds the message (exit 1 otherwise).
 * Then "ready", and it waits to be killed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: mapper DIR X\n");
        return 2;
    }
    static const char MSG[] = "written through the mapping\n";
    char path[4096];
    snprintf(path, sizeof path, "%s/m", argv[1]);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        char buf[4096] = {0}, zero[4096] = {0};
        ssize_t n = read(fd, buf, sizeof buf);
        if (n != 0 && !(n == 4096 && (memcmp(buf, MSG, sizeof MSG - 1) == 0 ||
                                      memcmp(buf, zero, sizeof buf) == 0))) {
            fprintf(stderr, "corrupt m: %zd bytes\n", n);
            return 1;
        }
        printf("ready\n");
        fflush(stdout);
        for (;;)
            pause();
    }
    fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0 || ftruncate(fd, 4096) != 0)
        die("create");
    int d = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (d < 0 || fsync(d) != 0)
        die("fsync dir");
    char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        die("mmap");
    memcpy(m, MSG, sizeof MSG - 1);
    int late = strcmp(argv[2], "late") == 0;
    if ((late || strcmp(argv[2], "msync") == 0) && msync(m, 4096, MS_SYNC) != 0)
        die("msync");
    if (late)
        m[100] = 'x';
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
