/* `pair server PORT`: accepts connections and keeps them open, waiting in accept();
 * `pair client PORT`: connects (retrying until the server listens), prints "connected" and
 * waits in read() forever. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

__attribute__((noinline)) static void hold(int fd) {
    char buf[16];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[2]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (strcmp(argv[1], "server") == 0) {
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 4))
            return 1;
        /* Accept every connection (ordeal's ready probe too) and keep it open. */
        for (;;)
            if (accept(s, NULL, NULL) < 0)
                return 1;
    } else {
        /* The server may not listen yet: nodes start together. */
        int tries = 0;
        while (connect(s, (struct sockaddr *)&a, sizeof a)) {
            close(s);
            if (++tries > 3000)
                return 1;
            usleep(10000);
            s = socket(AF_INET, SOCK_STREAM, 0);
        }
        printf("connected\n");
        fflush(stdout);
        hold(s);
    }
    return 0;
}
