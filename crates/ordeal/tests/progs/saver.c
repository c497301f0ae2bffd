/* A node that keeps one record in DIR/record and saves a new one at start-up.
 *
 *   saver DIR durable   temp file + fsync + rename + fsync of the directory
 *   saver DIR bare      temp file + rename, no fsync
 *
 * On start it checks DIR/record if present: exactly SIZE bytes, "rec\n", then 'a's, then
 * "end\n". A record that is not whole is corruption: exit 1 (recovery failed). Otherwise it
 * saves a new record, prints "saved" and waits to be killed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIZE 10000

static void die(const char *what) {
    perror(what);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: saver DIR durable|bare\n");
        return 2;
    }
    int durable = strcmp(argv[2], "durable") == 0;
    char rec[4096], tmp[4096];
    snprintf(rec, sizeof rec, "%s/record", argv[1]);
    snprintf(tmp, sizeof tmp, "%s/record.tmp", argv[1]);
    static char buf[SIZE + 1];
    int fd = open(rec, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, SIZE + 1);
        close(fd);
        int ok = n == SIZE && memcmp(buf, "rec\n", 4) == 0 && memcmp(buf + SIZE - 4, "end\n", 4) == 0;
        for (int i = 4; ok && i < SIZE - 4; i++)
            ok = buf[i] == 'a';
        if (!ok) {
            fprintf(stderr, "corrupt record: %zd bytes\n", n);
            return 1;
        }
    }
    memset(buf, 'a', SIZE);
    memcpy(buf, "rec\n", 4);
    memcpy(buf + SIZE - 4, "end\n", 4);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("open");
    if (write(fd, buf, SIZE) != SIZE)
        die("write");
    if (durable && fsync(fd) != 0)
        die("fsync");
    close(fd);
    if (rename(tmp, rec) != 0)
        die("rename");
    if (durable) {
        int d = open(argv[1], O_RDONLY | O_DIRECTORY);
        if (d < 0 || fsync(d) != 0)
            die("fsync dir");
        close(d);
    }
    printf("saved\n");
    fflush(stdout);
    for (;;)
        pause();
}
