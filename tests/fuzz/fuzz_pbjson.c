/* Fuzz target: the JSON rendering of messages (common/pbjson.c pbjson_write, what `lbctl status --json`
 * prints) over whatever protobuf-c unpacks from hostile bytes: strings with quotes, control characters
 * and invalid UTF-8, repeated and nested fields, enums with unknown values, bytes. The first input byte
 * picks the message type (every message of proto/), the rest is the packed message. The output must
 * carry no raw control character but the newlines of its layout (strings escape them). */
#include <stdio.h>
#include <stdlib.h>

#include "control.pb-c.h"
#include "fuzz.h"
#include "heartbeat.pb-c.h"
#include "pbjson.h"
#include "sync.pb-c.h"

static const ProtobufCMessageDescriptor *const fuzz_types[] = {
	&dsrlb__lbd_request__descriptor, &dsrlb__counters__descriptor, &dsrlb__backend__descriptor,
	&dsrlb__service__descriptor, &dsrlb__sync_status__descriptor, &dsrlb__lbd_status__descriptor,
	&dsrlb__flow__descriptor, &dsrlb__lbd_response__descriptor, &dsrlb__vrrp_request__descriptor,
	&dsrlb__peer_status__descriptor, &dsrlb__reject_counters__descriptor, &dsrlb__vrrp_status__descriptor,
	&dsrlb__vrrp_response__descriptor, &dsrlb__envelope__descriptor, &dsrlb__heartbeat__descriptor,
	&dsrlb__sync_flow__descriptor, &dsrlb__sync_message__descriptor,
};
#define FUZZ_NTYPES (sizeof(fuzz_types) / sizeof(fuzz_types[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	ProtobufCMessage *m;
	char *json = NULL;
	size_t len = 0;
	FILE *out;

	if (!ready) {
		fuzz_quiet();
		ready = 1;
	}
	if (size < 1)
		return 0;
	m = protobuf_c_message_unpack(fuzz_types[data[0] % FUZZ_NTYPES], NULL, size - 1, data + 1);
	if (!m)
		return 0;
	out = open_memstream(&json, &len);
	if (!out)
		abort();
	pbjson_write(out, m, 0);
	pbjson_write(out, m, 2);
	fclose(out);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)json[i] < 0x20 && json[i] != '\n')
			abort();
	free(json);
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
