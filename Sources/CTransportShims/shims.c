// Implementations of CTransportShims.h: each is a direct call of an OpenSSL
// macro or a Linux system call Swift cannot reach, plus two small parsers.
#define _GNU_SOURCE
#include "CTransportShims.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/x509v3.h>

long transport_ssl_ctx_set_mode(SSL_CTX *ctx, long mode) { return SSL_CTX_set_mode(ctx, mode); }

int transport_ssl_ctx_set_tls_versions(SSL_CTX *ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
           SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1;
}

void transport_ssl_ctx_set_options(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
}

int transport_ssl_ctx_disable_resumption(SSL_CTX *ctx) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    return SSL_CTX_set_num_tickets(ctx, 0);
}

int transport_ssl_set_sni(SSL *ssl, const char *host_name) {
    return (int)SSL_set_tlsext_host_name(ssl, host_name);
}

void transport_ssl_ctx_set_read_ahead(SSL_CTX *ctx) { SSL_CTX_set_read_ahead(ctx, 1); }

long transport_ssl_mode_release_buffers(void) { return SSL_MODE_RELEASE_BUFFERS; }
long transport_ssl_mode_enable_partial_write(void) { return SSL_MODE_ENABLE_PARTIAL_WRITE; }
long transport_ssl_mode_accept_moving_write_buffer(void) { return SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER; }
long transport_ssl_mode_no_auto_chain(void) { return SSL_MODE_NO_AUTO_CHAIN; }

int transport_client_hello_alpn_offers(SSL *ssl, const unsigned char *proto, size_t proto_len) {
    const unsigned char *ext = NULL;
    size_t ext_len = 0;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext, &ext_len) != 1) {
        return -1;
    }
    // ProtocolNameList: uint16 length, then (uint8 length, bytes)*.
    if (ext_len < 2) return 0;
    size_t list_len = ((size_t)ext[0] << 8) | ext[1];
    if (list_len + 2 > ext_len) return 0;
    size_t i = 2;
    while (i < 2 + list_len) {
        size_t n = ext[i];
        if (i + 1 + n > 2 + list_len) return 0;
        if (n == proto_len && memcmp(ext + i + 1, proto, n) == 0) return 1;
        i += 1 + n;
    }
    return 0;
}

uint32_t transport_epollin(void) { return EPOLLIN; }
uint32_t transport_epollout(void) { return EPOLLOUT; }
uint32_t transport_epollerr(void) { return EPOLLERR; }
uint32_t transport_epollhup(void) { return EPOLLHUP; }
uint32_t transport_epollrdhup(void) { return EPOLLRDHUP; }

int transport_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
int transport_epoll_ctl_add(void) { return EPOLL_CTL_ADD; }
int transport_epoll_ctl_mod(void) { return EPOLL_CTL_MOD; }
int transport_epoll_ctl_del(void) { return EPOLL_CTL_DEL; }

int transport_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event event;
    memset(&event, 0, sizeof(event));
    event.events = events;
    event.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &event);
}

int transport_epoll_wait(int epfd, transport_epoll_event *events, int capacity, int timeout_ms) {
    struct epoll_event raw[256];
    if (capacity > 256) capacity = 256;
    int n = epoll_wait(epfd, raw, capacity, timeout_ms);
    for (int i = 0; i < n; i++) {
        events[i].events = raw[i].events;
        events[i].data = raw[i].data.u64;
    }
    return n;
}

int transport_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int transport_eventfd_signal(int fd) {
    uint64_t one = 1;
    return (int)write(fd, &one, sizeof(one));
}

int transport_eventfd_drain(int fd) {
    uint64_t value = 0;
    return (int)read(fd, &value, sizeof(value));
}

int transport_accept(int listen_fd, char *address, size_t address_capacity, int *port) {
    struct sockaddr_storage storage;
    socklen_t length = sizeof(storage);
    int fd = accept4(listen_fd, (struct sockaddr *)&storage, &length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return fd;
    if (address_capacity > 0) address[0] = '\0';
    *port = 0;
    if (storage.ss_family == AF_INET) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&storage;
        inet_ntop(AF_INET, &in4->sin_addr, address, (socklen_t)address_capacity);
        *port = ntohs(in4->sin_port);
    } else if (storage.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&storage;
        inet_ntop(AF_INET6, &in6->sin6_addr, address, (socklen_t)address_capacity);
        *port = ntohs(in6->sin6_port);
    }
    return fd;
}

static int resolve_numeric(const char *host, int port, int passive, struct addrinfo **out) {
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    return getaddrinfo(host, service, &hints, out) == 0 ? 0 : -EINVAL;
}

int transport_listen(const char *host, int port, int backlog, int *bound_port) {
    struct addrinfo *info = NULL;
    if (resolve_numeric(host, port, 1, &info) != 0) return -EINVAL;
    int fd = socket(info->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { int e = errno; freeaddrinfo(info); return -e; }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, info->ai_addr, info->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
        int e = errno; close(fd); freeaddrinfo(info); return -e;
    }
    freeaddrinfo(info);
    struct sockaddr_storage storage;
    socklen_t length = sizeof(storage);
    getsockname(fd, (struct sockaddr *)&storage, &length);
    *bound_port = storage.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&storage)->sin6_port)
                                                : ntohs(((struct sockaddr_in *)&storage)->sin_port);
    return fd;
}

int transport_connect(const char *host, int port, int *in_progress) {
    struct addrinfo *info = NULL;
    *in_progress = 0;
    if (resolve_numeric(host, port, 0, &info) != 0) return -EINVAL;
    int fd = socket(info->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { int e = errno; freeaddrinfo(info); return -e; }
    int rc = connect(fd, info->ai_addr, info->ai_addrlen);
    freeaddrinfo(info);
    if (rc != 0) {
        if (errno != EINPROGRESS) { int e = errno; close(fd); return -e; }
        *in_progress = 1;
    }
    transport_set_nodelay(fd);
    return fd;
}

int transport_socket_error(int fd) {
    int error = 0;
    socklen_t length = sizeof(error);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno;
    return error;
}

int transport_set_nodelay(int fd) {
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

size_t transport_malloc_usable_size(void *pointer) { return malloc_usable_size(pointer); }

size_t transport_release_pages(void *block, size_t size) {
    long page = getpagesize();
    uintptr_t start = ((uintptr_t)block + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t end = ((uintptr_t)block + size) & ~((uintptr_t)page - 1);
    if (end <= start) return 0;
    return madvise((void *)start, end - start, MADV_DONTNEED) == 0 ? (size_t)(end - start) : 0;
}

size_t transport_resident_pages(void *block, size_t size) {
    long page = getpagesize();
    uintptr_t start = ((uintptr_t)block + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t end = ((uintptr_t)block + size) & ~((uintptr_t)page - 1);
    if (end <= start) return 0;
    size_t count = (end - start) / (size_t)page;
    unsigned char vector[64];
    if (count > sizeof vector || mincore((void *)start, end - start, vector) != 0) return 0;
    size_t resident = 0;
    for (size_t i = 0; i < count; i++) resident += vector[i] & 1;
    return resident;
}

int transport_malloc_trim(void) { return malloc_trim(0); }

size_t transport_heap_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}
