/* Fuzz target: the config loader (common/config.c cfg_load: file reading and size limit, inih's syntax
 * through our line reader, every keyword's parser, section rules and the checks across sections), and
 * for a config that loads, what both daemons derive from it (each node by name, its peer, the release
 * time).
 * The input is the file, written to a private temporary directory as cfg_load reads only files. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	char err[512];
	struct cfg *cfg;

	if (!ready) {
		fuzz_quiet();
		ready = 1;
	}
	cfg = cfg_load(fuzz_write_file("fuzz.conf", data, size), err, sizeof(err));
	if (!cfg) {
		/* Every refusal says why. */
		if (!err[0])
			abort();
		return 0;
	}
	for (size_t i = 0; i < cfg->n_nodes; i++) {
		const struct cfg_node *self = cfg_find_node(cfg, cfg->nodes[i].name, err, sizeof(err));
		if (!self || strcmp(self->name, cfg->nodes[i].name) != 0)
			abort();
		(void)cfg_peer(cfg, self);
	}
	(void)cfg_release_ms(cfg);
	cfg_free(cfg);
	return 0;
}
