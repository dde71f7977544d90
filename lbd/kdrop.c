/* The stack-side drop rule for VIP frames, through libnftables (the library behind `nft`). Packet
 * sockets receive frames before the netdev ingress hook, so lbd still sees every frame it drops here. */
#include <arpa/inet.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <string.h>

#include "kdrop.h"
#include "log.h"

#define KDROP_TABLE "dsrlb"

static int kdrop_run(const char *cmd)
{
	struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
	int rc;

	if (!nft) {
		log_err("%s: nft_ctx_new failed", __func__);
		return -1;
	}
	nft_ctx_buffer_error(nft);
	rc = nft_run_cmd_from_buffer(nft, cmd);
	if (rc != 0) {
		const char *e = nft_ctx_get_error_buffer(nft);
		log_warn("nftables: %s", e && e[0] ? e : "command failed");
	}
	nft_ctx_free(nft);
	return rc ? -1 : 0;
}

int kdrop_install(const char *ifname, const uint8_t mac[6], const uint32_t *vips, size_t n)
{
	char cmd[8192], set[4096] = "";
	size_t off = 0;

	if (!n) {
		kdrop_remove();
		return 0;
	}
	for (size_t i = 0; i < n && off < sizeof(set) - 32; i++) {
		char a[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &vips[i], a, sizeof(a));
		off += (size_t)snprintf(set + off, sizeof(set) - off, "%s%s", i ? ", " : "", a);
	}
	/* One transaction: make sure the table exists, delete it, create it anew. */
	snprintf(cmd, sizeof(cmd),
		 "add table netdev " KDROP_TABLE "\n"
		 "delete table netdev " KDROP_TABLE "\n"
		 "table netdev " KDROP_TABLE " {\n"
		 "  chain vip_frames {\n"
		 "    type filter hook ingress device \"%s\" priority -500; policy accept;\n"
		 "    ether daddr %02x:%02x:%02x:%02x:%02x:%02x ip daddr { %s } counter drop\n"
		 "  }\n"
		 "}\n",
		 ifname, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], set);
	return kdrop_run(cmd);
}

void kdrop_remove(void)
{
	kdrop_run("add table netdev " KDROP_TABLE "\ndelete table netdev " KDROP_TABLE "\n");
}
