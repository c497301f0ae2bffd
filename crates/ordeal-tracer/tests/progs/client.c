/* Connects to 127.0.0.1:<argv[1]>, writes "hello" then "world", reads "pong", exits 7. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&a, sizeof a)) return 2;
    write(s, "hello", 5);
    write(s, "world", 5);
    char buf[16];
    int got = 0;
    while (got < 4) {
        int n = read(s, buf + got, sizeof buf - got);
        if (n <= 0) return 3;
        got += n;
    }
    close(s);
    return 7;
}
