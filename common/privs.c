/* Capability drop without libcap: clears the bounding set except the kept capabilities and sets the
 * effective/permitted sets to exactly those, so a bug in input parsing cannot use the rest of root. */
#include <errno.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "privs.h"

int privs_keep_only(uint64_t keep)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];

	/* Dropping from the bounding set needs CAP_SETPCAP; without it (a service manager already limited
	 * the set) only the permitted and effective sets shrink, which is what matters for this process. */
	for (int cap = 0; cap <= 63; cap++) {
		if (keep & (1ull << cap) || prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1)
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL && errno != EPERM) {
			log_err("%s: PR_CAPBSET_DROP %d: %s", __func__, cap, strerror(errno));
			return -1;
		}
	}
	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = (uint32_t)keep;
	d[1].effective = d[1].permitted = (uint32_t)(keep >> 32);
	if (syscall(SYS_capset, &h, d) < 0) {
		log_err("%s: capset: %s", __func__, strerror(errno));
		return -1;
	}
	return 0;
}
