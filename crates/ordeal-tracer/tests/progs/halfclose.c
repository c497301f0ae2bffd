/* `halfclose` (no argument): listens on 127.0.0.1 (port printed), accepts one connection,
 * reads it to its end, prints `got N bytes: TEXT`, exits 0.
 * `halfclose PORT`: connects, writes "hello" and "world", shuts its writing side down, reads
 * until the server closes, exits 7. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    char buf[64];
    if (argc < 2) {
        socklen_t len = sizeof a;
        if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 8)) return 2;
        getsockname(s, (struct sockaddr *)&a, &len);
        printf("listening %d\n", ntohs(a.sin_port));
        fflush(stdout);
        int c = accept(s, NULL, NULL);
        int got = 0, n;
        while ((n = read(c, buf + got, sizeof buf - 1 - got)) > 0) got += n;
        buf[got] = 0;
        printf("got %d bytes: %s\n", got, buf);
        close(c);
        return 0;
    }
    a.sin_port = htons(atoi(argv[1]));
    if (connect(s, (struct sockaddr *)&a, sizeof a)) return 2;
    write(s, "hello", 5);
    write(s, "world", 5);
    shutdown(s, SHUT_WR);
    while (read(s, buf, sizeof buf) > 0) {
    }
    return 7;
}
