/* Three threads: one blocked in read() on a socket nobody writes to, one asleep on a
 * condition variable nobody signals, and the main thread joining them. Prints "up". */
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static int sv[2];
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;

static void *reader(void *x) {
    char b[8];
    while (read(sv[1], b, sizeof b) > 0) {
    }
    return x;
}

static void *sleeper(void *x) {
    pthread_mutex_lock(&m);
    for (;;)
        pthread_cond_wait(&c, &m);
    return x;
}

int main(void) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return 2;
    pthread_t a, b;
    pthread_create(&a, NULL, reader, NULL);
    pthread_create(&b, NULL, sleeper, NULL);
    printf("up\n");
    fflush(stdout);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    return 0;
}
