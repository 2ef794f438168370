/* Reference echo server: one thread, non-blocking sockets, level-triggered epoll.
 * Echoes whatever it reads; when the peer does not take the whole echo, keeps the rest
 * and stops reading that connection until it is written. The "physical limit" row.
 *
 *   echo_server [-p PORT]      (PORT 0 or absent: an ephemeral port)
 *
 * Prints "PORT <n>" once listening, then serves until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (1 << 18) /* 256 KiB, the read size of asyncio's selector transports */

typedef struct {
    int fd;
    size_t len, off; /* pending echo: buf[off:len] */
    unsigned char buf[BUF];
} conn_t;

static int epfd;

static void watch(conn_t *c, int op, unsigned events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, op, c->fd, &ev);
}

static void drop(conn_t *c) {
    close(c->fd);
    free(c);
}

static int listen_on(int port) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    socklen_t len = sizeof addr;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 1024) < 0) {
        perror("listen");
        exit(1);
    }
    getsockname(fd, (struct sockaddr *)&addr, &len);
    printf("PORT %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    return fd;
}

static void accept_all(int lfd) {
    int fd, one = 1;
    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_t *c = malloc(sizeof *c);
        c->fd = fd;
        c->len = c->off = 0;
        watch(c, EPOLL_CTL_ADD, EPOLLIN);
    }
}

/* Write the pending echo; returns -1 on error, 1 if some is still pending. */
static int flush(conn_t *c) {
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 1 : -1;
        c->off += (size_t)n;
    }
    c->off = c->len = 0;
    return 0;
}

static void serve(conn_t *c, unsigned events) {
    if (c->len) { /* waiting for EPOLLOUT */
        int r = flush(c);
        if (r < 0) drop(c);
        else if (r == 0) watch(c, EPOLL_CTL_MOD, EPOLLIN);
        return;
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    ssize_t n = recv(c->fd, c->buf, BUF, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        drop(c);
        return;
    }
    if (n < 0) return;
    c->len = (size_t)n;
    int r = flush(c);
    if (r < 0) drop(c);
    else if (r > 0) watch(c, EPOLL_CTL_MOD, EPOLLOUT);
}

int main(int argc, char **argv) {
    int port = 0, opt;
    while ((opt = getopt(argc, argv, "p:")) != -1) {
        if (opt == 'p') port = atoi(optarg);
        else {
            fprintf(stderr, "usage: %s [-p PORT]\n", argv[0]);
            return 64;
        }
    }
    int lfd = listen_on(port);
    epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(epfd, events, 256, -1);
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL) accept_all(lfd);
            else serve(events[i].data.ptr, events[i].events);
        }
    }
}
