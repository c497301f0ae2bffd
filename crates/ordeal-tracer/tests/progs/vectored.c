/* Sends on a socketpair with writev (three buffers) and sendmsg (two), then reads them back
 * with readv and recvmsg: the payload capture must follow the buffers, never read past one. */
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

int main(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 2;
    char a[] = "abc", b[] = "defg", c[] = "hij";
    struct iovec w[3] = {{a, 3}, {b, 4}, {c, 3}};
    if (writev(sv[0], w, 3) != 10) return 3;
    char d[] = "KL", e[] = "MNOP";
    struct iovec m[2] = {{d, 2}, {e, 4}};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = m;
    msg.msg_iovlen = 2;
    if (sendmsg(sv[0], &msg, 0) != 6) return 4;
    char r1[4], r2[100];
    struct iovec r[2] = {{r1, 4}, {r2, 6}};
    if (readv(sv[1], r, 2) != 10) return 5;
    char q1[3], q2[100];
    struct iovec q[2] = {{q1, 3}, {q2, 100}};
    struct msghdr in;
    memset(&in, 0, sizeof in);
    in.msg_iov = q;
    in.msg_iovlen = 2;
    if (recvmsg(sv[1], &in, 0) != 6) return 6;
    return 0;
}
