// C functions the Transport target needs but Swift cannot call directly:
// OpenSSL macros (SSL_CTX_set_mode & co. expand to SSL_CTX_ctrl calls), X.509
// stack iteration (type-generic macros), ALPN offer parsing, and the Linux
// epoll/eventfd/accept4 calls that Swift's Glibc module does not export.
#ifndef C_TRANSPORT_SHIMS_H
#define C_TRANSPORT_SHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

// MARK: OpenSSL macros

long transport_ssl_ctx_set_mode(SSL_CTX *ctx, long mode);
int transport_ssl_ctx_set_tls_versions(SSL_CTX *ctx);        // TLS 1.2 .. 1.3
// No renegotiation, no compression, peers may close without close_notify.
void transport_ssl_ctx_set_options(SSL_CTX *ctx);
void transport_ssl_ctx_set_read_ahead(SSL_CTX *ctx);
// Server side: no session cache, no TLS 1.2 tickets, no TLS 1.3 tickets: every handshake is a full one.
int transport_ssl_ctx_disable_resumption(SSL_CTX *ctx);
int transport_ssl_set_sni(SSL *ssl, const char *host_name);
long transport_ssl_mode_release_buffers(void);
long transport_ssl_mode_enable_partial_write(void);
long transport_ssl_mode_accept_moving_write_buffer(void);
long transport_ssl_mode_no_auto_chain(void);

// 1 when the ClientHello carries an ALPN extension offering `proto`, 0 when it
// offers ALPN without it, -1 when it carries no ALPN extension at all.
// Only valid inside a client-hello callback.
int transport_client_hello_alpn_offers(SSL *ssl, const unsigned char *proto, size_t proto_len);


// MARK: Linux system calls

// malloc_usable_size(3), for nghttp2's counting allocator.
size_t transport_malloc_usable_size(void *pointer);
// madvise(MADV_DONTNEED) on the whole pages inside [block, block + size): the kernel takes them back and they
// read as zeros when next touched. Returns the bytes released (0 when no whole page lies inside, or on error).
size_t transport_release_pages(void *block, size_t size);
/// Whole pages inside the block that are resident (mincore), for the tests; 0 past 64 pages or on error.
size_t transport_resident_pages(void *block, size_t size);
// malloc_trim(0): gives free heap pages (in every arena, not only the top) back to the kernel.
int transport_malloc_trim(void);
// Bytes the process heap has handed out (mallinfo2: arena + mmapped chunks in use).
size_t transport_heap_in_use(void);

// Unpacked mirror of `struct epoll_event` (which is packed on x86-64).
typedef struct {
    uint32_t events;
    uint64_t data;
} transport_epoll_event;

uint32_t transport_epollin(void);
uint32_t transport_epollout(void);
uint32_t transport_epollerr(void);
uint32_t transport_epollhup(void);
uint32_t transport_epollrdhup(void);

int transport_epoll_create(void);
int transport_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
int transport_epoll_ctl_add(void);
int transport_epoll_ctl_mod(void);
int transport_epoll_ctl_del(void);
// Waits for at most `capacity` (<= 256) events; returns the count or -1 (errno set).
int transport_epoll_wait(int epfd, transport_epoll_event *events, int capacity, int timeout_ms);

int transport_eventfd(void);
int transport_eventfd_signal(int fd);
int transport_eventfd_drain(int fd);

// accept4(SOCK_NONBLOCK | SOCK_CLOEXEC); fills `address` (an IPv4/IPv6 text
// form, at least 64 bytes) and `port`.
int transport_accept(int listen_fd, char *address, size_t address_capacity, int *port);

// A non-blocking listening TCP socket bound to `host` (numeric IPv4/IPv6) and
// `port` (0 = ephemeral); the bound port goes to `bound_port`. Returns the fd
// or -errno (-EAI_* values are mapped to -EINVAL).
int transport_listen(const char *host, int port, int backlog, int *bound_port);
// A non-blocking TCP connect to numeric `host`:`port`. Returns the fd or
// -errno; `in_progress` is 1 when the caller must wait for writability.
int transport_connect(const char *host, int port, int *in_progress);
// SO_ERROR of a socket (0 when the connect succeeded).
int transport_socket_error(int fd);
int transport_set_nodelay(int fd);

#endif
