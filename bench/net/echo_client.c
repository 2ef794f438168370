/* Echo load generator: K connections, each sends a SIZE-byte message, reads exactly
 * SIZE bytes back (checking every byte), repeats. Single thread, epoll, level-triggered.
 *
 *   echo_client -p PORT [-H 127.0.0.1] [-c CONNS] [-s SIZE] [-d SECONDS] [-n REQUESTS]
 *
 * Runs for SECONDS (default 2) or until REQUESTS round trips are complete, whichever
 * comes first, then prints one JSON line:
 *   {"requests": N, "seconds": S, "wrong": W, "error": "..."}
 * "wrong" counts echoed messages whose bytes differ from what was sent.
 * Exit status 0 on success, 1 on a socket error, 2 if any reply was wrong.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SCRATCH (1 << 18)
#define OFFSETS 256

typedef struct {
    int fd;
    size_t sent, recvd;
    unsigned long round;
    int bad;     /* this round's reply differed from the message */
    int writing; /* EPOLLOUT registered */
} conn_t;

static unsigned char *pattern;
static unsigned char scratch[SCRATCH];
static size_t size = 1024;
static int epfd;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void finish(long requests, double seconds, long wrong, const char *error) {
    printf("{\"requests\": %ld, \"seconds\": %.6f, \"wrong\": %ld, \"error\": \"%s\"}\n",
           requests, seconds, wrong, error ? error : "");
    fflush(stdout);
    exit(error ? 1 : (wrong ? 2 : 0));
}

static const unsigned char *message(conn_t *c, int index) {
    return pattern + ((unsigned long)index * 17 + c->round) % OFFSETS;
}

static void set_events(conn_t *c, int index, int writing) {
    struct epoll_event ev = {.events = EPOLLIN | (writing ? EPOLLOUT : 0)};
    ev.data.u32 = (unsigned)index;
    if (c->writing != writing && epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        perror("epoll_ctl");
        exit(1);
    }
    c->writing = writing;
}

/* Write as much of the current message as the socket takes; 0 on success. */
static int pump(conn_t *c, int index) {
    const unsigned char *msg = message(c, index);
    while (c->sent < size) {
        ssize_t n = send(c->fd, msg + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            return -1;
        }
        c->sent += (size_t)n;
    }
    set_events(c, index, c->sent < size);
    return 0;
}

static int connect_one(const char *host, int port) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || inet_pton(AF_INET, host, &addr.sin_addr) != 1) return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0, nconns = 10, opt;
    double seconds = 2.0;
    long limit = 0, requests = 0, wrong = 0;
    while ((opt = getopt(argc, argv, "H:p:c:s:d:n:")) != -1) {
        switch (opt) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': nconns = atoi(optarg); break;
        case 's': size = (size_t)atol(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 'n': limit = atol(optarg); break;
        default:
            fprintf(stderr, "usage: %s -p PORT [-H HOST] [-c CONNS] [-s SIZE] [-d SECONDS]"
                            " [-n REQUESTS]\n", argv[0]);
            return 64;
        }
    }
    if (port <= 0 || nconns <= 0 || size == 0) {
        fprintf(stderr, "need -p PORT, positive -c and -s\n");
        return 64;
    }
    pattern = malloc(size + OFFSETS);
    for (size_t i = 0; i < size + OFFSETS; i++) pattern[i] = (unsigned char)((i * 131 + i / 251) % 251);
    conn_t *conns = calloc((size_t)nconns, sizeof *conns);
    epfd = epoll_create1(0);
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = connect_one(host, port);
        if (conns[i].fd < 0) finish(0, 0, 0, "connect failed");
        struct epoll_event ev = {.events = EPOLLIN};
        ev.data.u32 = (unsigned)i;
        epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    double start = now(), deadline = start + seconds;
    for (int i = 0; i < nconns; i++)
        if (pump(&conns[i], i) < 0) finish(0, 0, 0, "send failed");
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(epfd, events, 256, 100);
        if (n < 0 && errno != EINTR) finish(requests, now() - start, wrong, "epoll_wait failed");
        double t = now();
        if (t >= deadline || (limit && requests >= limit)) finish(requests, t - start, wrong, NULL);
        for (int e = 0; e < n; e++) {
            int i = (int)events[e].data.u32;
            conn_t *c = &conns[i];
            if (events[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                ssize_t got = recv(c->fd, scratch, SCRATCH, 0);
                if (got == 0) finish(requests, t - start, wrong, "server closed the connection");
                if (got < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK) continue;
                    finish(requests, t - start, wrong, "recv failed");
                }
                if (c->recvd + (size_t)got > c->sent) finish(requests, t - start, wrong + 1,
                                                          "server sent more than it got");
                if (memcmp(scratch, message(c, i) + c->recvd, (size_t)got) != 0) c->bad = 1;
                c->recvd += (size_t)got;
                if (c->recvd == size) {
                    requests++;
                    wrong += c->bad;
                    c->bad = 0;
                    c->sent = c->recvd = 0;
                    c->round++;
                    if (pump(c, i) < 0) finish(requests, t - start, wrong, "send failed");
                    continue;
                }
            }
            if ((events[e].events & EPOLLOUT) && c->sent < size && pump(c, i) < 0)
                finish(requests, t - start, wrong, "send failed");
        }
    }
}
