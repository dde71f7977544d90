/* A minimal HTTP/1.x server for one resource, GET /metrics, on a libev loop: one request per
 * connection, answered and closed. It bounds what a client may cost: HTTP_MAX_CLIENTS connections (a
 * newcomer evicts the one that has been sending its request longest), HTTP_MAX_REQUEST bytes of request
 * head, HTTP_READ_MS to send it, HTTP_WRITE_MS to take the answer. Garbage gets a 4xx and a close. */
#ifndef DSR_HTTP_H
#define DSR_HTTP_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define HTTP_MAX_CLIENTS 4
#define HTTP_MAX_REQUEST 4096     /* request line and headers; Prometheus sends about 300 bytes */
#define HTTP_READ_MS 3000         /* the whole request head, from connect */
#define HTTP_WRITE_MS 10000       /* the body's arrival (the scrape's deadline is far shorter) and its sending */
#define HTTP_LINGER_MS 500        /* after answering: reading what the client still sends, so close sends no RST */
#define HTTP_ACCEPT_BATCH 16

/* A connection waits for the metrics text: answer it (and every other waiting one) with http_server_answer. */
typedef void (*http_want_fn)(void *arg);

struct http_server;
/* Listens on addr; NULL with the reason logged. */
struct http_server *http_server_create(struct ev_loop *loop, const struct sockaddr *addr, socklen_t addr_len,
				       http_want_fn want, void *arg);
void http_server_destroy(struct http_server *s);
/* The metrics text for every waiting connection; body NULL answers 503. */
void http_server_answer(struct http_server *s, const char *body, size_t len);

/* What to answer a request head (buf, len, not NUL-terminated): 0 while the head is incomplete, 200 for
 * GET /metrics, else the HTTP error status (400, 404, 405, 431, 505). */
int http_parse_request(const char *buf, size_t len);

#endif
