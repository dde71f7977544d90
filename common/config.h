/* The cluster config: one INI file, identical on both nodes (docs/config.md is the reference).
 * cfg_load() parses into a fresh struct and validates all of it; on error it returns NULL and writes
 * "file:line: what is wrong" into err, so a running daemon keeps its old config. */
#ifndef DSR_CONFIG_H
#define DSR_CONFIG_H

#include <net/if.h>
#include <netinet/in.h>
#include <limits.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "ipaddr.h"

#define CFG_NAME_MAX      32
#define CFG_MAX_NODES     16  /* mode = ecmp; a pair has at most 2 */
#define CFG_PAIR_NODES    2
#define CFG_MAX_SERVICES  64
#define CFG_MAX_BACKENDS  64
#define CFG_MAX_KEYS      2
#define CFG_DIGEST_LEN    32
#define CFG_CMD_MAX       512
#define CFG_GROUP_NAME_MAX 64
#define CFG_USER_MAX      64
#define CFG_LISTEN_MAX    64  /* "ADDRESS:PORT" as written */
#define CFG_DEFAULT_USER  "dsrlb"  /* when `user` is not set (docs/deploy.md, Privileges) */

enum cfg_check { CFG_CHECK_NONE, CFG_CHECK_TCP, CFG_CHECK_HTTP };
enum cfg_on_down { CFG_DOWN_RESCHEDULE, CFG_DOWN_KEEP };
/* none: one flow per connection; client: one entry per client address and service (IPVS persistence). */
enum cfg_persist { CFG_PERSIST_NONE, CFG_PERSIST_CLIENT };
/* pair: one active node elected by vrrpd; ecmp: every node forwards, the VIP routed to each over BGP
 * (docs/deploy-ecmp.md). */
enum cfg_mode { CFG_MODE_PAIR, CFG_MODE_ECMP };

/* A group named in the config (operator_group, status_group): by name or as a numeric gid. */
struct cfg_group {
	char name[CFG_GROUP_NAME_MAX];  /* as written, for messages */
	gid_t gid;
	int set;                        /* 0: not configured */
};

struct cfg_node {
	char name[CFG_NAME_MAX];
	struct ipaddr addr;             /* IPv4 or IPv6: heartbeats and sync go over it */
	uint8_t priority;               /* 1..254; 0 = not set (mode = ecmp only) */
	int line;
};

struct cfg_backend {
	struct ipaddr addr;             /* of its service's VIP's family */
	uint32_t weight;                /* 0..65535; 0 = drained by config */
	int line;
};

struct cfg_service {
	char name[CFG_NAME_MAX];
	struct ipaddr vip;              /* IPv4 or IPv6 */
	uint16_t port;                  /* host order */
	uint8_t proto;                  /* IPPROTO_TCP or IPPROTO_UDP */
	struct cfg_backend backends[CFG_MAX_BACKENDS];
	size_t n_backends;
	enum cfg_check check;
	uint32_t check_interval_ms;
	uint32_t check_timeout_ms;
	uint32_t rise, fall;
	char check_path[128];
	char check_host[128];
	uint32_t check_status;
	enum cfg_on_down on_backend_down;
	enum cfg_persist persistence;
	struct ipaddr sorry_backend;    /* none (::) = drop when all are down */
	int line;
};

struct cfg {
	char path[PATH_MAX];
	enum cfg_mode mode;
	char interface[IFNAMSIZ];
	/* mode = ecmp: the VIP routes lbd holds in announce_table via announce_device while it may take
	 * traffic, for the local routing daemon to export (docs/deploy-ecmp.md) */
	uint32_t announce_table;
	char announce_device[IFNAMSIZ];
	uint32_t drain_quiet_ms;        /* after a withdrawal: no VIP frame this long = the router has moved */
	/* Where mode, announce_table and announce_device were set (0: default), for the file:line of a
	 * reload that changes them (they change only on restart). */
	int mode_line, announce_table_line, announce_device_line;
	char key_files[CFG_MAX_KEYS][PATH_MAX]; /* the first seals, all open (key rotation) */
	size_t n_key_files;
	int key_file_lines[CFG_MAX_KEYS];       /* where each is named, for errors about the file itself */
	uint32_t advert_interval_ms;    /* 10 ms .. 40 s */
	int preempt;
	uint32_t preempt_delay_ms;
	uint32_t garp_count;            /* ARPs per burst */
	uint32_t garp_repeat_ms;        /* delay of the second burst; 0 = none */
	uint32_t garp_refresh_ms;       /* periodic refresh while active; 0 = off */
	uint32_t fence_ms;              /* lbd goes standby when vrrpd is silent this long */
	uint32_t lbd_timeout_ms;        /* vrrpd goes FAULT when lbd does not answer this long */
	uint32_t stop_timeout_ms;       /* graceful stop: longest wait for the new master */
	uint16_t heartbeat_port;
	uint16_t sync_port;
	int sync;                       /* connection-state sync with the peer */
	uint32_t sync_timeout_ms;       /* longest wait for the bulk sync before preempting anyway */
	uint32_t sync_peer_timeout_ms;  /* unacknowledged sync data this long: the peer is gone */
	struct in_addr multicast;       /* INADDR_ANY = unicast only */
	int realtime;
	int kernel_drop;                /* nftables rule keeping the local stack off VIP frames */
	uint32_t flow_max;
	uint32_t workers;
	uint32_t rx_ring_version;       /* TPACKET_V2 (per-frame wakeup) or TPACKET_V3 (blocks) */
	uint32_t tcp_established_ms;
	uint32_t tcp_syn_ms;
	uint32_t tcp_fin_ms;
	uint32_t udp_ms;
	uint32_t persistence_ms;        /* idle timeout of a client's entry in a `persistence = client` service */
	uint32_t arp_refresh_ms;        /* how often backend MACs are re-resolved */
	char notify_master[CFG_CMD_MAX];
	char notify_backup[CFG_CMD_MAX];
	char notify_fault[CFG_CMD_MAX];
	uint32_t notify_timeout_ms;
	struct cfg_group operator_group; /* may change state over the control sockets */
	struct cfg_group status_group;   /* may read status over the control sockets */
	/* metrics_listen: where dsrlb-exporter serves /metrics (docs/metrics.md); "" = off */
	char metrics_listen[CFG_LISTEN_MAX];
	struct sockaddr_storage metrics_addr;
	socklen_t metrics_addr_len;
	char user[CFG_USER_MAX];        /* `user` as written; "" = not set (the default user, if it exists) */
	uid_t uid;                      /* `user` resolved at load; meaningful only when user[0] */
	gid_t gid;
	struct cfg_node nodes[CFG_MAX_NODES];
	size_t n_nodes;
	struct cfg_service services[CFG_MAX_SERVICES];
	size_t n_services;
	uint8_t digest[CFG_DIGEST_LEN]; /* BLAKE2b of the file's bytes */
};

struct cfg *cfg_load(const char *path, char *err, size_t errlen);
void cfg_free(struct cfg *cfg);

/* The node this process runs as: by name, or (name NULL) the node whose address is configured on
 * a local interface. NULL with err set if there is none. */
const struct cfg_node *cfg_find_node(const struct cfg *cfg, const char *name, char *err, size_t errlen);
/* The other node of the pair, or NULL for a single-node cluster. */
const struct cfg_node *cfg_peer(const struct cfg *cfg, const struct cfg_node *self);
/* How long a node that gives the VIPs up keeps forwarding (docs/ARCHITECTURE.md, Stopping). */
uint32_t cfg_release_ms(const struct cfg *cfg);

/* "USER" or "USER:GROUP", each a name or a number, to a uid and gid: a user's group is its primary
 * group; a bare uid that has no account needs its group ("uid:gid"). 0, or -1 with err set. */
int cfg_parse_user(const char *spec, uid_t *uid, gid_t *gid, char *err, size_t errlen);

/* "A.B.C.D:PORT" or "[IPV6]:PORT" (any address, a port in 1..65535) to a socket address; 0 or -1. */
int cfg_parse_listen(const char *s, struct sockaddr_storage *out, socklen_t *len);

/* "100ms", "2s", "1m", "1h" or a bare number of milliseconds. */
int cfg_parse_duration_ms(const char *s, uint32_t *out);

/* The distinct VIPs of the config's services, in order of first use; how many. */
size_t cfg_vips(const struct cfg *cfg, struct ipaddr *out, size_t cap);
/* Whether any service has an IPv6 VIP. */
int cfg_has_ipv6(const struct cfg *cfg);

#endif
