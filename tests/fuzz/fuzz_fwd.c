/* Fuzz target: the forwarding path of one lbd worker (lbd/worker.c worker_run_batch handing each frame
 * to lbd/fwd.c fwd_frame: classification, the connection table, Maglev, ICMP errors and echo, fragments,
 * ARP replies and observations, then lbd/arp.c arp_events_cb applying what the worker learnt), over a
 * run of frames from the LAN.
 *
 * No socket and no thread: the ring API is fuzz_lbd.h's, over the input's frames, and forwarded or
 * answered frames land in a buffer that is checked.
 *
 * Input: one byte of mode (bit 0 active, bit 1 owner of the VIPs, bit 2 the degraded backend set of
 * fuzz_lbd.h), then frames, each one byte of ring status (bit 0 a VLAN tag was
 * stripped, bit 1 truncated capture), a 2-byte length and the frame. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fuzz_lbd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct fuzz_in in = { data, size };
	const struct fuzz_lbd_state *st;
	uint8_t mode;

	if (!ready) {
		fuzz_quiet();
		fuzz_lbd_setup();
		ready = 1;
	}
	mode = fuzz_u8(&in);
	st = fuzz_lbd_begin(mode >> 2);
	L.active = mode & 1;
	L.owner = (mode >> 1) & 1;
	fake.n = fake.next = 0;
	while (in.n && fake.n < FUZZ_FRAMES) {
		const uint8_t *chunk;
		uint8_t status = fuzz_u8(&in);
		size_t len = fuzz_chunk(&in, FUZZ_FRAME_MAX, &chunk);
		/* Each frame in a buffer of its own length, so an over-read is caught. */
		uint8_t *f = malloc(len ? len : 1);
		if (!f)
			break;
		memcpy(f, chunk, len);
		fake.frames[fake.n] = f;
		fake.lens[fake.n] = (uint32_t)len;
		fake.status[fake.n] = status;
		fake.n++;
	}
	worker_run_batch(&W);
	arp_events_cb(L.loop, &L.arp_wake, EV_ASYNC);
	/* Expire everything, as the worker's timer would much later. */
	flow_expire(W.flows, clock_ms() + 30 * 86400000ull, &L.timeouts, flow_max(W.flows),
		    fwd_flow_gone, &W.fwd);
	if (flow_count(W.flows) != 0)
		abort();
	for (size_t i = 0; i < fake.n; i++)
		free(fake.frames[i]);
	fuzz_lbd_end(st);
	return 0;
}
