/* What a hash-flooding attacker computes offline: TCP tuples toward VIP:PORT whose public flow_hash
 * (lbd/flow.c, the Maglev input) falls into one chain of a HEADS-chain table indexed by it.
 *
 *     collide VIP PORT HEADS COUNT NET [NET...]
 *
 * Sources are NET.1..NET.254 (NET = the first three octets, documentation nets only), ports 1024..65535.
 * Prints "address port" lines, at most COUNT, all with the same flow_hash & (HEADS - 1). Built by the lab
 * test against build/libdsrlb.a so it uses lbd's own flow_hash. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lbd/flow.h"

int main(int argc, char **argv)
{
	struct flow_key k;
	struct in_addr vip;
	unsigned long heads, count, found = 0;
	uint32_t target = 0;
	int have_target = 0;

	if (argc < 6 || inet_pton(AF_INET, argv[1], &vip) != 1) {
		fprintf(stderr, "usage: collide VIP PORT HEADS COUNT NET [NET...]\n");
		return 2;
	}
	heads = strtoul(argv[3], NULL, 10);
	count = strtoul(argv[4], NULL, 10);
	if (!heads || (heads & (heads - 1))) {
		fprintf(stderr, "collide: HEADS must be a power of two\n");
		return 2;
	}
	memset(&k, 0, sizeof(k));
	k.daddr = ipaddr_from_v4(vip.s_addr);
	k.dport = htons((uint16_t)atoi(argv[2]));
	k.proto = 6;
	for (int n = 5; n < argc && found < count; n++) {
		unsigned a, b, c;
		if (sscanf(argv[n], "%u.%u.%u", &a, &b, &c) != 3)
			return 2;
		for (unsigned host = 1; host < 255 && found < count; host++) {
			k.saddr = ipaddr_from_v4(htonl(a << 24 | b << 16 | c << 8 | host));
			for (unsigned port = 1024; port < 65536 && found < count; port++) {
				k.sport = htons((uint16_t)port);
				uint32_t chain = flow_hash(&k) & (uint32_t)(heads - 1);
				if (!have_target) {
					target = chain;
					have_target = 1;
				}
				if (chain != target)
					continue;
				printf("%u.%u.%u.%u %u\n", a, b, c, host, port);
				found++;
			}
		}
	}
	return found ? 0 : 1;
}
