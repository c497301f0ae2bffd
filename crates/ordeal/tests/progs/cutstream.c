/* A stream across a partition, as Go programs use sockets: non-blocking, edge-triggered epoll.
 *
 * `cutstream server PORT`: accepts connections and reads them with an edge-triggered epoll,
 *   printing `read N bytes at T` (CLOCK_MONOTONIC, ms) for every read that returned bytes.
 * `cutstream client PORT`: connects, then every 20 ms writes `msg K\n` (K = 1..50) on its
 *   non-blocking socket, printing `write K returned R after D us at T`. Before its 15th write
 *   it also starts a second, non-blocking connect and waits for it at most 100 ms
 *   (`second connect: writable after D ms` or `second connect: not yet after 100 ms`); after
 *   its last write it waits (at most 5 s) for that connect to complete
 *   (`second connect: established at T`). Exits 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static int serve(struct sockaddr_in *a) {
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)a, sizeof *a) || listen(l, 16))
        return 1;
    nonblocking(l);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = l};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    for (;;) {
        struct epoll_event got[8];
        int n = epoll_wait(ep, got, 8, -1);
        for (int i = 0; i < n; i++) {
            int fd = got[i].data.fd;
            if (fd == l) {
                int c;
                while ((c = accept(l, NULL, NULL)) >= 0) {
                    nonblocking(c);
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            /* Edge-triggered: read until EAGAIN, or the edge is lost. */
            char buf[4096];
            for (;;) {
                ssize_t r = read(fd, buf, sizeof buf);
                if (r > 0) {
                    printf("read %zd bytes at %.3f\n", r, now_ms());
                    fflush(stdout);
                    continue;
                }
                if (r == 0 || errno != EAGAIN)
                    close(fd);
                break;
            }
        }
    }
}

static int client(struct sockaddr_in *a) {
    int s = socket(AF_INET, SOCK_STREAM, 0), tries = 0;
    while (connect(s, (struct sockaddr *)a, sizeof *a)) {
        close(s);
        if (++tries > 3000)
            return 1;
        usleep(10000);
        s = socket(AF_INET, SOCK_STREAM, 0);
    }
    nonblocking(s);
    int second = -1;
    for (int k = 1; k <= 50; k++) {
        if (k == 15) {
            second = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            double t0 = now_ms();
            int r = connect(second, (struct sockaddr *)a, sizeof *a);
            struct pollfd p = {.fd = second, .events = POLLOUT};
            if (r == 0 || poll(&p, 1, 100) == 1)
                printf("second connect: writable after %.3f ms\n", now_ms() - t0);
            else
                printf("second connect: not yet after 100 ms\n");
        }
        char msg[32];
        int len = snprintf(msg, sizeof msg, "msg %d\n", k);
        double t0 = now_ms();
        ssize_t r = write(s, msg, len);
        double t1 = now_ms();
        printf("write %d returned %zd after %.0f us at %.3f\n", k, r, (t1 - t0) * 1e3, t1);
        fflush(stdout);
        usleep(20000);
    }
    struct pollfd p = {.fd = second, .events = POLLOUT};
    if (poll(&p, 1, 5000) == 1 && !(p.revents & (POLLERR | POLLHUP)))
        printf("second connect: established at %.3f\n", now_ms());
    else
        printf("second connect: never established\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[2]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (strcmp(argv[1], "server") == 0)
        return serve(&a);
    return client(&a);
}
