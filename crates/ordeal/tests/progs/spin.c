/* Spins forever without a system call. */
#include <stdio.h>

volatile unsigned long counter;

__attribute__((noinline)) static void spin_forever(void) {
    for (;;)
        counter++;
}

int main(void) {
    printf("spinning\n");
    fflush(stdout);
    spin_forever();
    return 0;
}
