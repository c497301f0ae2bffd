/* Waits for one byte on stdin, then makes argv[1] one-byte writes to stdout. */
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 100;
    long n = atol(argv[1]);
    char go;
    if (read(0, &go, 1) != 1) return 101;
    for (long i = 0; i < n; i++)
        if (write(1, "x", 1) != 1) return 102;
    return 0;
}
