/* One process, two UDP sockets on 127.0.0.1: a sends "datagram" (8 bytes) to b, b receives it
   with recvfrom, then answers "ok" (2 bytes) which a receives. */
#include <arpa/inet.h>
#include <unistd.h>
int main(void) {
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET}, sb = {.sin_family = AF_INET}, from;
    sa.sin_addr.s_addr = sb.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (bind(a, (struct sockaddr *)&sa, sizeof sa) || bind(b, (struct sockaddr *)&sb, sizeof sb)) return 2;
    getsockname(a, (struct sockaddr *)&sa, &len);
    len = sizeof sb;
    getsockname(b, (struct sockaddr *)&sb, &len);
    sendto(a, "datagram", 8, 0, (struct sockaddr *)&sb, sizeof sb);
    char buf[64];
    len = sizeof from;
    if (recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &len) != 8) return 3;
    sendto(b, "ok", 2, 0, (struct sockaddr *)&from, len);
    if (recv(a, buf, sizeof buf, 0) != 2) return 4;
    return 0;
}
