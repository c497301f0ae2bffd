/* Forks a grandchild that tries to escape (new session), then both sleep forever. */
#include <unistd.h>
int main(void) {
    if (fork() == 0) { setsid(); if (fork() == 0) { for (;;) pause(); } for (;;) pause(); }
    for (;;) pause();
}
