/* Two threads talk over a socketpair: one writes "ping" (4 bytes), the other reads it. */
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
static int sv[2];
static void *writer(void *x) { write(sv[0], "ping", 4); return x; }
static void *reader(void *x) {
    char b[8];
    int got = 0;
    while (got < 4) { int n = read(sv[1], b, sizeof b); if (n <= 0) break; got += n; }
    return x;
}
int main(void) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 2;
    pthread_t a, b;
    pthread_create(&b, NULL, reader, NULL);
    pthread_create(&a, NULL, writer, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    return 0;
}
