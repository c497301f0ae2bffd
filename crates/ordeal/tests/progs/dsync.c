/* A node that appends records to DIR/log and acknowledges each in DIR/acked.
 *
 *   dsync DIR dsync   both files opened O_DSYNC: a write is durable when it returns
 *   dsync DIR plain   no O_DSYNC, no fsync
 *
 * First start (no DIR/acked): both files are created and the directory fsynced, then
 * records 1..3 (RECLEN bytes each) are appended to the log, each acknowledged by a line "N"
 * appended to acked once its write returned. Later starts check that every acknowledged
 * record is in the log, whole: otherwise exit 1 (recovery failed). Then "ready", and it
 * waits to be killed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RECLEN 64
#define RECORDS 3

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void record(int n, char *out) {
    memset(out, '.', RECLEN);
    int k = snprintf(out, RECLEN, "record %d", n);
    out[k] = ' ';
    out[RECLEN - 1] = '\n';
}

/* The largest N of the whole lines "N\n" in acked (torn or zeroed lines ignored). */
static int acknowledged(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[64];
    int max = 0;
    while (fgets(line, sizeof line, f)) {
        int n;
        char nl;
        if (sscanf(line, "%d%c", &n, &nl) == 2 && nl == '\n' && n > max)
            max = n;
    }
    fclose(f);
    return max;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: dsync DIR dsync|plain\n");
        return 2;
    }
    int sync = strcmp(argv[2], "dsync") == 0 ? O_DSYNC : 0;
    char log[4096], acked[4096];
    snprintf(log, sizeof log, "%s/log", argv[1]);
    snprintf(acked, sizeof acked, "%s/acked", argv[1]);
    int max = acknowledged(acked);
    if (max >= 0) {
        int fd = open(log, O_RDONLY);
        char got[RECLEN], want[RECLEN];
        for (int n = 1; n <= max; n++) {
            record(n, want);
            if (fd < 0 || pread(fd, got, RECLEN, (off_t)(n - 1) * RECLEN) != RECLEN ||
                memcmp(got, want, RECLEN) != 0) {
                fprintf(stderr, "acknowledged record %d is not in the log\n", n);
                return 1;
            }
        }
        printf("ready\n");
        fflush(stdout);
        for (;;)
            pause();
    }
    int lf = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | sync, 0644);
    int af = open(acked, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | sync, 0644);
    int d = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (lf < 0 || af < 0 || d < 0 || fsync(d) != 0)
        die("setup");
    close(d);
    for (int n = 1; n <= RECORDS; n++) {
        char rec[RECLEN], ack[16];
        record(n, rec);
        if (write(lf, rec, RECLEN) != RECLEN)
            die("write log");
        int k = snprintf(ack, sizeof ack, "%d\n", n);
        if (write(af, ack, k) != k)
            die("write acked");
    }
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause();
}
