/* Writes into DIR/f with write, then pwritev2 at an offset and at the fd's offset (-1). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/uio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char path[4096];
    snprintf(path, sizeof path, "%s/f", argv[1]);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 1;
    if (write(fd, "ab", 2) != 2) return 2;
    struct iovec at10 = {"XYZ", 3};
    if (pwritev2(fd, &at10, 1, 10, 0) != 3) return 3;
    struct iovec here = {"cd", 2};
    if (pwritev2(fd, &here, 1, -1, 0) != 2) return 4;
    if (fsync(fd) != 0) return 5;
    return close(fd);
}
