/* lbctl check-backend: from the balancer, tells an operator whether a backend is ready for DSR (it
 * answers ARP, does not answer ARP for the VIP, accepts packets for the VIP, listens on its own address).
 * Each check prints one "ok", "FAIL", "warn" or "skip" line with what to fix. */
#ifndef DSR_CHECKBACKEND_H
#define DSR_CHECKBACKEND_H

/* Exit statuses, the same as the rest of lbctl's. */
enum checkbackend_exit {
	CHECKBACKEND_OK = 0,            /* every check passed (warnings allowed) */
	CHECKBACKEND_FAIL = 1,          /* at least one check failed */
	CHECKBACKEND_USAGE = 2,
	CHECKBACKEND_CANNOT = 3,        /* cannot run: no CAP_NET_RAW, no such interface, bad config */
};

/* Runs the command. argv[0] is "check-backend", the rest its arguments; cfg_path is lbctl's global -c
 * (NULL if not given). Returns one of enum checkbackend_exit. */
int checkbackend_main(int argc, char **argv, const char *cfg_path);

#endif
