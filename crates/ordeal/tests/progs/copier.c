/* A node that publishes DIR/msg from a copy made by copy_file_range(2): it saves DIR/src
 * durably (write, fsync, directory fsync), copies it into DIR/msg.tmp with copy_file_range
 * (the first half at the descriptors' offsets, the rest at explicit offsets), [fsyncs
 * msg.tmp], renames it to DIR/msg and fsyncs the directory.
 *
 *   copier DIR fsync [sendfile]   msg.tmp is fsynced before the rename
 *   copier DIR bare [sendfile]    it is not
 *
 * With `sendfile`, the copy is made with sendfile(2) instead (the first half at the source's
 * offset, the rest from an explicit source offset; the destination's offset both times).
 *
 * A start that finds DIR/msg checks it holds the whole message (exit 1 otherwise: recovery
 * failed); a start that does not publishes it. Then "ready", and it waits to be killed.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

static const char MSG[] = "the copied message, whole and in order\n";

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void sync_dir(const char *dir) {
    int d = open(dir, O_RDONLY | O_DIRECTORY);
    if (d < 0 || fsync(d) != 0)
        die("fsync dir");
    close(d);
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: copier DIR fsync|bare [sendfile]\n");
        return 2;
    }
    int durable = strcmp(argv[2], "fsync") == 0;
    int send = argc == 4 && strcmp(argv[3], "sendfile") == 0;
    char msg[4096], tmp[4096], src[4096];
    snprintf(msg, sizeof msg, "%s/msg", argv[1]);
    snprintf(tmp, sizeof tmp, "%s/msg.tmp", argv[1]);
    snprintf(src, sizeof src, "%s/src", argv[1]);
    size_t len = strlen(MSG), half = len / 2;
    int fd = open(msg, O_RDONLY);
    if (fd >= 0) {
        char buf[sizeof MSG + 1];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n != (ssize_t)len || memcmp(buf, MSG, n) != 0) {
            fprintf(stderr, "corrupt msg: %zd bytes\n", n);
            return 1;
        }
    } else {
        int s = open(src, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (s < 0 || write(s, MSG, len) != (ssize_t)len || fsync(s) != 0)
            die("src");
        sync_dir(argv[1]);
        if (lseek(s, 0, SEEK_SET) != 0)
            die("lseek");
        unlink(tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd < 0)
            die("open msg.tmp");
        if (send) {
            off_t in = half;
            if (sendfile(fd, s, NULL, half) != (ssize_t)half)
                die("sendfile");
            if (sendfile(fd, s, &in, len - half) != (ssize_t)(len - half))
                die("sendfile at an offset");
        } else {
            if (copy_file_range(s, NULL, fd, NULL, half, 0) != (ssize_t)half)
                die("copy_file_range");
            loff_t in = half, out = half;
            if (copy_file_range(s, &in, fd, &out, len - half, 0) != (ssize_t)(len - half))
                die("copy_file_range at offsets");
        }
        if (durable && fsync(fd) != 0)
            die("fsync");
        close(fd);
        close(s);
        if (rename(tmp, msg) != 0)
            die("rename");
        sync_dir(argv[1]);
    }
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
