/* Control-socket plumbing: Unix stream sockets carrying length-prefixed protobuf messages (a 4-byte
 * big-endian length, then the packed message). The server runs on a libev loop and answers each
 * request through a handler; a client that sends garbage, stalls or stays silent is disconnected,
 * nothing more, and a full server makes room for a newcomer by evicting the client silent longest. */
#ifndef DSR_IPC_H
#define DSR_IPC_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define IPC_MAX_MSG (16u << 20)   /* largest response (a 100 000-entry flow listing is about 12 MiB) */
#define IPC_MAX_REQ (64u << 10)   /* largest request: requests are a few hundred bytes */
#define IPC_MAX_CLIENTS 64
#define IPC_BACKLOG 64            /* connections the kernel queues before the server accepts them */
#define IPC_ACCEPT_BATCH 32       /* connections accepted per wakeup */
#define IPC_PARTIAL_MS 5000       /* a request must arrive, and its response be taken, within this */
#define IPC_IDLE_MS 60000         /* a connection with nothing in progress is closed after this */
#define IPC_OUT_BUDGET (16u << 20) /* queued responses of all clients together, beyond the small ones */
#define IPC_SMALL_RESP (64u << 10) /* responses up to this size are always queued */

/* What a client may do, decided once when it connects from its credentials (SO_PEERCRED and
 * SO_PEERGROUPS): common/ctlauth.c holds the rule, docs/security.md states it. */
enum ipc_access { IPC_ACCESS_NONE, IPC_ACCESS_READ, IPC_ACCESS_CHANGE };

struct ipc_cred {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	const gid_t *groups;      /* supplementary groups */
	size_t n_groups;
};

/* The connected client as the handler sees it. */
struct ipc_peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	enum ipc_access access;
};

typedef enum ipc_access (*ipc_access_fn)(void *arg, const struct ipc_cred *cred);

/* Handles one request. Returns 0 with a malloc'd packed response in *resp (freed by the server),
 * IPC_REFUSED with a response that refuses the request for want of rights (counted; a client with no
 * rights at all is closed once it has the answer), or -1 when the request could not be unpacked: the
 * server then closes that client. */
#define IPC_REFUSED 1
typedef int (*ipc_handler)(void *arg, const struct ipc_peer *peer, const uint8_t *req, size_t len,
			   uint8_t **resp, size_t *resp_len);

struct ipc_server_stats {
	uint64_t bad_requests;    /* did not unpack (or a response over IPC_MAX_MSG) */
	uint64_t refused;         /* requests refused for want of rights */
	uint64_t idle_closed;     /* silent past IPC_IDLE_MS, or a message not done within IPC_PARTIAL_MS */
	uint64_t evicted;         /* closed to make room for a new connection */
	uint64_t oversized;       /* a length prefix over IPC_MAX_REQ, or a response over the budget */
};

struct ipc_server;
/* The socket file is made mode 0666: the daemon, not the file system, decides who may do what. */
struct ipc_server *ipc_server_create(struct ev_loop *loop, const char *path, ipc_access_fn access,
				     ipc_handler h, void *arg);
void ipc_server_destroy(struct ipc_server *s);
void ipc_server_stats(const struct ipc_server *s, struct ipc_server_stats *out);   /* s NULL: zeros */
/* Shorter deadlines than IPC_PARTIAL_MS and IPC_IDLE_MS, for the unit tests. */
void ipc_server_set_deadlines(struct ipc_server *s, uint32_t partial_ms, uint32_t idle_ms);

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
