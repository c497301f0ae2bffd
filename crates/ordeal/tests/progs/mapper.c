/* A node that writes DIR/m through a shared mapping (invisible to a system-call tracer):
 * create, size it to 4096 bytes, fsync the directory, map it MAP_SHARED, copy a message in,
 * msync. Then "ready", and it waits to be killed. Its argument after DIR is ignored.
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
    char path[4096];
    snprintf(path, sizeof path, "%s/m", argv[1]);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0 || ftruncate(fd, 4096) != 0)
        die("create");
    int d = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (d < 0 || fsync(d) != 0)
        die("fsync dir");
    char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        die("mmap");
    memcpy(m, "written through the mapping\n", 28);
    if (msync(m, 4096, MS_SYNC) != 0)
        die("msync");
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
