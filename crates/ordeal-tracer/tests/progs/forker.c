/* Forks a child that writes into a file under argv[1] with fsync and exits 3; the parent
   waits for it and exits 0. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    pid_t p = fork();
    if (p == 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/f.tmp", argv[1]);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        write(fd, "abc", 3);
        fsync(fd);
        close(fd);
        char to[4096];
        snprintf(to, sizeof to, "%s/f", argv[1]);
        rename(path, to);
        _exit(3);
    }
    int st;
    waitpid(p, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 3 ? 0 : 1;
}
