/* Control-socket plumbing: Unix stream sockets carrying length-prefixed protobuf messages (a 4-byte
 * big-endian length, then the packed message). The server runs on a libev loop and answers each
 * request through a handler; a client that sends garbage or stalls is disconnected, nothing more. */
#ifndef DSR_IPC_H
#define DSR_IPC_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#define IPC_MAX_MSG (16u << 20)   /* largest message either way (a long flow listing) */
#define IPC_MAX_CLIENTS 64
#define IPC_IDLE_MS 30000         /* a client silent this long mid-message is dropped */

/* Handles one request. Returns a malloc'd packed response in *resp (freed by the server), or -1 when
 * the request could not be unpacked: the server then closes that client. */
typedef int (*ipc_handler)(void *arg, const uint8_t *req, size_t len, uint8_t **resp, size_t *resp_len);

struct ipc_server;
struct ipc_server *ipc_server_create(struct ev_loop *loop, const char *path, ipc_handler h, void *arg);
void ipc_server_destroy(struct ipc_server *s);
uint64_t ipc_server_bad_requests(const struct ipc_server *s);

/* Blocking request/response for lbctl and tests: connects, sends, waits up to timeout_ms in total.
 * Returns 0 with a malloc'd *resp, or -1 with err set to a one-line reason. */
int ipc_call(const char *path, const uint8_t *req, size_t len, uint8_t **resp, size_t *resp_len,
	     int timeout_ms, char *err, size_t errlen);

/* Asynchronous client on a libev loop with one request in flight (vrrpd talking to lbd). The callback
 * runs with the response, or with resp == NULL when the connection failed or timed out. */
typedef void (*ipc_reply_cb)(void *arg, const uint8_t *resp, size_t len);
struct ipc_client;
struct ipc_client *ipc_client_create(struct ev_loop *loop, const char *path, ipc_reply_cb cb, void *arg);
void ipc_client_destroy(struct ipc_client *c);
/* Sends a request; -1 if one is still in flight. The callback fires exactly once per accepted request. */
int ipc_client_send(struct ipc_client *c, const uint8_t *req, size_t len, int timeout_ms);
int ipc_client_busy(const struct ipc_client *c);

#endif
