/* A Unix-domain stream server at argv[1]; a forked child connects and sends "hello" (5 bytes),
   the server answers "bye" (3 bytes). The parent reaps the child and exits 0. */
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1)) return 2;
    pid_t p = fork();
    if (p == 0) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)&a, sizeof a)) _exit(3);
        write(c, "hello", 5);
        char b[8];
        int got = 0;
        while (got < 3) { int n = read(c, b + got, sizeof b - got); if (n <= 0) _exit(4); got += n; }
        _exit(0);
    }
    int s = accept(l, NULL, NULL);
    char b[8];
    int got = 0;
    while (got < 5) { int n = read(s, b + got, sizeof b - got); if (n <= 0) return 5; got += n; }
    write(s, "bye", 3);
    int st;
    waitpid(p, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 6;
}
