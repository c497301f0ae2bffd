/* Waits for one byte on stdin (the test follows this process meanwhile), then writes
 * argv[1] bytes to /dev/null, forks a child that writes argv[2] bytes there and exits with 3,
 * waits for it, and exits with argv[3]. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char buf[65536];

int main(int argc, char **argv) {
    if (argc != 4) return 100;
    long mine = atol(argv[1]), childs = atol(argv[2]);
    char go;
    if (read(0, &go, 1) != 1) return 101;
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0) return 102;
    if (write(fd, buf, mine) != mine) return 103;
    pid_t child = fork();
    if (child < 0) return 104;
    if (child == 0) {
        if (write(fd, buf, childs) != childs) _exit(105);
        _exit(3);
    }
    int status;
    if (waitpid(child, &status, 0) != child) return 106;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 3) return 107;
    return atoi(argv[3]);
}
