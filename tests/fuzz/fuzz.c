/* Helpers shared by the fuzz targets (see fuzz.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "log.h"

const uint8_t fuzz_key[AUTH_KEY_LEN] = {
	0x46, 0x55, 0x5a, 0x5a, 0x2d, 0x6b, 0x65, 0x79, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
};

static const char fuzz_cfg_text[] =
	"[cluster]\n"
	"interface = lo\n"
	"key_file = %s\n"
	"advert_interval = 100ms\n"
	"sync = yes\n"
	"flow_max = 1024\n"
	"\n"
	"[node lb1]\n"
	"address = 192.0.2.11\n"
	"priority = 150\n"
	"\n"
	"[node lb2]\n"
	"address = 192.0.2.12\n"
	"priority = 100\n"
	"\n"
	"[service web]\n"
	"vip = 192.0.2.100\n"
	"port = 80\n"
	"protocol = tcp\n"
	"backend = 192.0.2.21\n"
	"backend = 192.0.2.22 weight=2\n"
	"backend = 192.0.2.23\n"
	"sorry_backend = 192.0.2.29\n"
	"\n"
	"[service dns]\n"
	"vip = 192.0.2.100\n"
	"port = 53\n"
	"protocol = udp\n"
	"backend = 192.0.2.31\n"
	"backend = 192.0.2.32\n"
	"on_backend_down = keep\n"
	"\n"
	"[service mail]\n"
	"vip = 192.0.2.101\n"
	"port = 25\n"
	"protocol = tcp\n"
	"backend = 192.0.2.41\n"
	"\n"
	"[service web6]\n"
	"vip = 2001:db8::100\n"
	"port = 80\n"
	"protocol = tcp\n"
	"backend = 2001:db8::21\n"
	"backend = 2001:db8::22 weight=2\n";

static char fuzz_dir[64];

static void fuzz_cleanup(void)
{
	DIR *d = opendir(fuzz_dir);
	struct dirent *e;
	char path[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", fuzz_dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(fuzz_dir);
}

const char *fuzz_tmpdir(void)
{
	if (fuzz_dir[0])
		return fuzz_dir;
	strcpy(fuzz_dir, "/tmp/dsrlb-fuzz-XXXXXX");
	if (!mkdtemp(fuzz_dir)) {
		perror("mkdtemp");
		exit(1);
	}
	atexit(fuzz_cleanup);
	return fuzz_dir;
}

const char *fuzz_write_file(const char *name, const void *buf, size_t len)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", fuzz_tmpdir(), name);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	return path;
}

struct cfg *fuzz_cfg(void)
{
	char hex[2 * AUTH_KEY_LEN + 2], text[sizeof(fuzz_cfg_text) + 256], keypath[256], err[512];
	struct cfg *cfg;

	for (size_t i = 0; i < AUTH_KEY_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", fuzz_key[i]);
	strcat(hex, "\n");
	snprintf(keypath, sizeof(keypath), "%s", fuzz_write_file("cluster.key", hex, strlen(hex)));
	chmod(keypath, 0600);
	snprintf(text, sizeof(text), fuzz_cfg_text, keypath);
	cfg = cfg_load(fuzz_write_file("dsrlb.conf", text, strlen(text)), err, sizeof(err));
	if (!cfg) {
		fprintf(stderr, "fuzz: the targets' config does not load: %s\n", err);
		exit(1);
	}
	return cfg;
}

void fuzz_quiet(void)
{
	FILE *null = fopen("/dev/null", "w");

	/* The daemons' log lines go to the stdio stream stderr (foreground logging); sanitizer reports and
	 * libFuzzer's own output write to file descriptor 2 directly, so they still show. */
	log_init("fuzz", 1, 0);
	if (null)
		stderr = null;
}

uint8_t fuzz_u8(struct fuzz_in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = in->p[0];
		in->p++;
		in->n--;
	}
	return v;
}

uint16_t fuzz_u16(struct fuzz_in *in)
{
	uint16_t hi = fuzz_u8(in);

	return (uint16_t)(hi << 8 | fuzz_u8(in));
}

size_t fuzz_chunk(struct fuzz_in *in, size_t max, const uint8_t **chunk)
{
	size_t len = fuzz_u16(in);

	if (len > max)
		len = max;
	if (len > in->n)
		len = in->n;
	*chunk = in->p;
	in->p += len;
	in->n -= len;
	return len;
}
