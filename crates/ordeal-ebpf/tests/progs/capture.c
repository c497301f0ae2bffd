/* Waits for one byte on stdin (the test follows this process meanwhile), then makes every
 * kind of call whose records carry copies, printing what the test compares them with:
 *   tcp PORT CLIENT_PORT CONN_FD CONN_INO      127.0.0.1: bind, listen, connect, accept,
 *                                              send "hello", recv, close
 *   tcp6 PORT CLIENT_PORT                      [::1]: the same, to accept
 *   udp PORT CLIENT_PORT                       sendto "dgram", recvfrom with the source,
 *                                              sendmsg "message" (two iovecs), recvmsg
 *   pair FD0 FD1 INO0 INO1                     socketpair(AF_UNIX), writev "unixy" "pair",
 *                                              readv into 2 bytes, then 16
 *   file INO                                   open "DIR/a file", rename to "DIR/b file",
 *                                              open "DIR/" and 300 x's (fails)
 * argv[1] is DIR. Exits 0, or the number of the step that failed. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static unsigned long ino(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? (unsigned long)st.st_ino : 0;
}

static int port(int fd) {
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0) return -1;
    if (a.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
    return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

static int tcp(void) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0) return 10;
    if (listen(listener, 4) != 0) return 11;
    addr.sin_port = htons(port(listener));
    int client = socket(AF_INET, SOCK_STREAM, 0);
    /* A bad address pointer: the call fails, its copy is absent. */
    if (connect(client, (struct sockaddr *)1, sizeof addr) == 0) return 12;
    if (connect(client, (struct sockaddr *)&addr, sizeof addr) != 0) return 13;
    struct sockaddr_in peer;
    socklen_t peer_len = sizeof peer;
    int conn = accept(listener, (struct sockaddr *)&peer, &peer_len);
    if (conn < 0) return 14;
    if (send(client, "hello", 5, 0) != 5) return 15;
    char buf[64];
    if (recv(conn, buf, sizeof buf, 0) != 5) return 16;
    printf("tcp %d %d %d %lu\n", port(listener), port(client), conn, ino(conn));
    fflush(stdout);
    close(conn);
    close(client);
    close(listener);
    return 0;
}

static int tcp6(void) {
    struct sockaddr_in6 addr = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int listener = socket(AF_INET6, SOCK_STREAM, 0);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0) return 20;
    if (listen(listener, 4) != 0) return 21;
    addr.sin6_port = htons(port(listener));
    int client = socket(AF_INET6, SOCK_STREAM, 0);
    if (connect(client, (struct sockaddr *)&addr, sizeof addr) != 0) return 22;
    int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) return 23;
    printf("tcp6 %d %d\n", port(listener), port(client));
    fflush(stdout);
    close(conn);
    close(client);
    close(listener);
    return 0;
}

static int udp(void) {
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int server = socket(AF_INET, SOCK_DGRAM, 0);
    if (bind(server, (struct sockaddr *)&addr, sizeof addr) != 0) return 30;
    addr.sin_port = htons(port(server));
    int client = socket(AF_INET, SOCK_DGRAM, 0);
    if (sendto(client, "dgram", 5, 0, (struct sockaddr *)&addr, sizeof addr) != 5) return 31;
    char buf[64];
    struct sockaddr_in src;
    socklen_t src_len = sizeof src;
    if (recvfrom(server, buf, sizeof buf, 0, (struct sockaddr *)&src, &src_len) != 5)
        return 32;
    struct iovec out[2] = {{"mess", 4}, {"age", 3}};
    struct msghdr msg = {.msg_name = &addr, .msg_namelen = sizeof addr, .msg_iov = out,
                         .msg_iovlen = 2};
    if (sendmsg(client, &msg, 0) != 7) return 33;
    struct iovec in = {buf, sizeof buf};
    struct msghdr got = {.msg_name = &src, .msg_namelen = sizeof src, .msg_iov = &in,
                         .msg_iovlen = 1};
    if (recvmsg(server, &got, 0) != 7) return 34;
    printf("udp %d %d\n", port(server), port(client));
    fflush(stdout);
    close(client);
    close(server);
    return 0;
}

static int pair(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 40;
    struct iovec out[2] = {{"unixy", 5}, {"pair", 4}};
    if (writev(sv[0], out, 2) != 9) return 41;
    char a[2], b[16];
    struct iovec in[2] = {{a, sizeof a}, {b, sizeof b}};
    if (readv(sv[1], in, 2) != 9) return 42;
    printf("pair %d %d %lu %lu\n", sv[0], sv[1], ino(sv[0]), ino(sv[1]));
    fflush(stdout);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static int file(const char *dir) {
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/a file", dir);
    snprintf(to, sizeof to, "%s/b file", dir);
    int fd = open(from, O_CREAT | O_WRONLY, 0600);
    if (fd < 0) return 50;
    if (rename(from, to) != 0) return 51;
    printf("file %lu\n", ino(fd));
    fflush(stdout);
    close(fd);
    char long_name[512];
    int n = snprintf(long_name, sizeof long_name, "%s/", dir);
    memset(long_name + n, 'x', 300);
    long_name[n + 300] = 0;
    if (open(long_name, O_RDONLY) >= 0) return 52;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) return 100;
    char go;
    if (read(0, &go, 1) != 1) return 101;
    int failed = tcp();
    if (!failed) failed = tcp6();
    if (!failed) failed = udp();
    if (!failed) failed = pair();
    if (!failed) failed = file(argv[1]);
    return failed;
}
