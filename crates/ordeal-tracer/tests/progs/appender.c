/* Appends one byte at a time to <argv[1]>/f until killed (at most 10 million). */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    char path[4096];
    snprintf(path, sizeof path, "%s/f", argv[1]);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return 3;
    for (long i = 0; i < 10000000; i++) write(fd, "x", 1);
    return 0;
}
