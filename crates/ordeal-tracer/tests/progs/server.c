/* Listens on 127.0.0.1 (kernel-chosen port, printed), accepts one connection, reads 10 bytes, answers "pong", exits 0. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 8)) return 2;
    socklen_t len = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &len);
    printf("listening %d\n", ntohs(a.sin_port));
    fflush(stdout);
    int c = accept(l, NULL, NULL);
    char buf[64];
    int got = 0;
    while (got < 10) {
        int n = read(c, buf, sizeof buf);
        if (n <= 0) return 3;
        got += n;
    }
    write(c, "pong", 4);
    close(c);
    close(l);
    return 0;
}
