/* Privilege drop, shared by lbd and vrrpd (docs/deploy.md, "Privileges"): once everything that needs
 * root is open, the process becomes the configured unprivileged user and keeps only the capabilities
 * it still uses, so a bug in input parsing can neither use the rest of root nor write root's files. */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "privs.h"

int privs_check_root(const char *prog)
{
	if (geteuid() == 0)
		return 0;
	fprintf(stderr, "%s: must be started as root (uid %u here): it opens its sockets as root, then runs as "
		"the config's `user` with only the capabilities it needs (docs/deploy.md, Privileges)\n",
		prog, (unsigned)geteuid());
	return -1;
}

int privs_target(const struct cfg *cfg, uid_t *uid, gid_t *gid, int warn)
{
	char err[256];

	if (cfg->user[0]) {
		*uid = cfg->uid;
		*gid = cfg->gid;
		return 0;
	}
	if (cfg_parse_user(CFG_DEFAULT_USER, uid, gid, err, sizeof(err)) == 0)
		return 0;
	/* No such account: running at all beats refusing to start on a host nobody prepared, and the
	 * capability drop still holds. The warning says how to do better. */
	if (warn)
		log_warn("user '%s' does not exist: staying root, with no capabilities (docs/deploy.md, Privileges); "
			 "create it (useradd --system --user-group --shell /usr/sbin/nologin %s) or set `user` in [cluster]",
			 CFG_DEFAULT_USER, CFG_DEFAULT_USER);
	*uid = 0;
	*gid = 0;
	return 1;
}

/* Only a directory of the control sockets alone is handed over: --run-dir pointed at /run or /tmp
 * must not give the daemon's user a system directory. */
static int privs_dir_is_ours(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int ours = 1;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "lbd.sock") &&
		    strcmp(e->d_name, "vrrpd.sock"))
			ours = 0;
	closedir(d);
	return ours;
}

int privs_run_dir(const char *dir)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {	/* anyone may reach the sockets: docs/security.md */
		log_err("run dir %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

int privs_hand_over(const char *dir, const char *sock, uid_t uid, gid_t gid)
{
	struct stat st;

	if (uid == 0)
		return 0;
	/* The socket's group stays: it decides who else may reach it. */
	if (lchown(sock, uid, (gid_t)-1) < 0) {
		log_err("%s: chown %s to uid %u: %s", __func__, sock, (unsigned)uid, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) < 0) {
		log_err("%s: %s: %s", __func__, dir, strerror(errno));
		return -1;
	}
	if (st.st_uid == uid || (st.st_gid == gid && (st.st_mode & (S_IWGRP | S_IXGRP)) == (S_IWGRP | S_IXGRP)))
		return 0;
	if ((st.st_mode & (S_ISVTX | S_IWOTH)) || !privs_dir_is_ours(dir)) {
		log_warn("run dir %s holds other files or is shared: not handing it to gid %u, so the control "
			 "sockets stay behind at exit; give the daemons a directory of their own (--run-dir)",
			 dir, (unsigned)gid);
		return 0;
	}
	/* The owner stays root, so the other daemon, still root, can bind its socket there too
	 * (under systemd root has no CAP_DAC_OVERRIDE); the group lets the user remove its socket. */
	if (lchown(dir, (uid_t)-1, gid) < 0 || chmod(dir, (st.st_mode & 07777) | S_IWGRP | S_IXGRP) < 0) {
		log_err("%s: giving %s to gid %u: %s", __func__, dir, (unsigned)gid, strerror(errno));
		return -1;
	}
	return 0;
}

/* Every capability the kernel knows leaves the bounding set except those in keep. Needs CAP_SETPCAP,
 * so it runs while the process is still root. */
static int privs_bound(uint64_t keep)
{
	int warned = 0;

	for (int cap = 0; cap <= 63; cap++) {
		if (keep & (1ull << cap) || prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1)
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno != EPERM) {
			log_err("%s: PR_CAPBSET_DROP %d: %s", __func__, cap, strerror(errno));
			return -1;
		}
		/* Without CAP_SETPCAP (a service manager took it away) the bounding set stays as it
		 * was given; the permitted set below is what limits this process. */
		if (!warned++)
			log_warn("cannot shrink the capability bounding set (no CAP_SETPCAP): %s", strerror(errno));
	}
	return 0;
}

static int privs_caps_set(uint64_t keep)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = (uint32_t)keep;
	d[1].effective = d[1].permitted = (uint32_t)(keep >> 32);
	if (syscall(SYS_capset, &h, d) < 0) {
		log_err("%s: capset: %s", __func__, strerror(errno));
		return -1;
	}
	return 0;
}

/* Reads back what the kernel holds: the drop is trusted only once it is seen. */
static int privs_verify(uid_t uid, gid_t gid, uint64_t keep)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	uint64_t eff, prm, inh;

	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || syscall(SYS_capget, &h, d) < 0) {
		log_err("%s: %s", __func__, strerror(errno));
		return -1;
	}
	eff = d[0].effective | (uint64_t)d[1].effective << 32;
	prm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid || eff != keep ||
	    prm != keep || inh != 0 || prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		log_err("%s: the privilege drop did not hold (uid %u/%u/%u gid %u/%u/%u, capabilities %#llx/%#llx)",
			__func__, (unsigned)ru, (unsigned)eu, (unsigned)su, (unsigned)rg, (unsigned)eg, (unsigned)sg,
			(unsigned long long)eff, (unsigned long long)prm);
		return -1;
	}
	if (uid != 0 && setuid(0) == 0) {
		log_err("%s: setuid(0) still works", __func__);
		return -1;
	}
	return 0;
}

int privs_drop(uid_t uid, gid_t gid, uint64_t keep)
{
	if (privs_bound(keep) < 0)
		return -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) {
		log_err("%s: clearing the ambient set: %s", __func__, strerror(errno));
		return -1;
	}
	if (uid != 0) {
		/* KEEPCAPS keeps the permitted set across setuid (the effective set is emptied); capset
		 * below then makes exactly `keep` effective. Only gid stays: no supplementary groups. */
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups(1, &gid) < 0 ||
		    setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
			log_err("%s: becoming uid %u gid %u: %s", __func__, (unsigned)uid, (unsigned)gid, strerror(errno));
			return -1;
		}
		prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	}
	if (privs_caps_set(keep) < 0)
		return -1;
	/* No exec (a notify hook) can gain privileges again: no setuid programs, no file capabilities. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		log_err("%s: PR_SET_NO_NEW_PRIVS: %s", __func__, strerror(errno));
		return -1;
	}
	return privs_verify(uid, gid, keep);
}

int privs_become(const struct cfg *cfg, uid_t uid, gid_t gid, uint64_t keep)
{
	char caps[128];

	if (privs_drop(uid, gid, keep) < 0)
		return -1;
	log_info("running as uid %u gid %u, capabilities: %s", (unsigned)uid, (unsigned)gid,
		 privs_caps_str(keep, caps, sizeof(caps)));
	/* Reload re-reads these as this user: say so now rather than at the first reload. */
	if (access(cfg->path, R_OK) < 0)
		log_warn("%s: %s as uid %u: a reload will fail (docs/deploy.md, Privileges)", cfg->path,
			 strerror(errno), (unsigned)uid);
	for (size_t i = 0; i < cfg->n_key_files; i++)
		if (access(cfg->key_files[i], R_OK) < 0)
			log_warn("%s: %s as uid %u: a reload will fail; make the key file group-readable by "
				 "gid %u (chgrp, chmod 640)", cfg->key_files[i], strerror(errno), (unsigned)uid,
				 (unsigned)gid);
	return 0;
}

const char *privs_caps_str(uint64_t caps, char *buf, size_t len)
{
	static const char *const names[] = {
		[CAP_KILL] = "CAP_KILL", [CAP_NET_ADMIN] = "CAP_NET_ADMIN", [CAP_NET_RAW] = "CAP_NET_RAW",
	};
	size_t off = 0;

	snprintf(buf, len, "none");
	for (unsigned cap = 0; cap < 64 && off < len; cap++) {
		if (!(caps & (1ull << cap)))
			continue;
		if (cap < sizeof(names) / sizeof(names[0]) && names[cap])
			off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? " " : "", names[cap]);
		else
			off += (size_t)snprintf(buf + off, len - off, "%scap%u", off ? " " : "", cap);
	}
	return buf;
}
