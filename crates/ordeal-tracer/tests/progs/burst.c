/* 20000 one-byte datagrams over a Unix socketpair, each read back at once: 40000 transfers
 * in a few milliseconds. */
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) return 2;
    char b;
    for (int i = 0; i < 20000; i++) {
        if (write(sv[0], "x", 1) != 1 || read(sv[1], &b, 1) != 1) return 3;
    }
    return 0;
}
