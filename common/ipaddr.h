/* One type for an IP address of either family, so services, backends, flows and sync records of IPv4 and
 * IPv6 go through the same code: IPv6 as is, IPv4 in its IPv4-mapped form ::ffff:a.b.c.d (RFC 4291,
 * section 2.5.5.2). All bytes in network order; the all-zero address (::) means "none". */
#ifndef DSR_IPADDR_H
#define DSR_IPADDR_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

struct ipaddr {
	union {
		uint8_t b[16];
		uint32_t w[4];          /* 4-byte alignment only: keeps the structs that hold one compact */
	};
};

#define IPADDR_STRLEN INET6_ADDRSTRLEN  /* ipaddr_str's buffer, with its NUL */
#define IPADDR_PORT_STRLEN (IPADDR_STRLEN + 8)  /* ipaddr_port_str's: brackets, colon, five digits */

static inline int ipaddr_is_v4(const struct ipaddr *a)
{
	return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == htonl(0xffff);
}

/* The IPv4 address (network order) of an IPv4-mapped address. */
static inline uint32_t ipaddr_v4(const struct ipaddr *a)
{
	return a->w[3];
}

static inline struct ipaddr ipaddr_from_v4(uint32_t addr_n)
{
	struct ipaddr a = { .w = { 0, 0, htonl(0xffff), addr_n } };
	return a;
}

static inline struct ipaddr ipaddr_from_v6(const uint8_t *b16)
{
	struct ipaddr a;

	memcpy(a.b, b16, 16);
	return a;
}

static inline int ipaddr_eq(const struct ipaddr *a, const struct ipaddr *b)
{
	return ((a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2]) | (a->w[3] ^ b->w[3])) == 0;
}

/* The all-zero address: "none" (never a valid IPv4-mapped address). */
static inline int ipaddr_is_none(const struct ipaddr *a)
{
	return (a->w[0] | a->w[1] | a->w[2] | a->w[3]) == 0;
}

static inline int ipaddr_family(const struct ipaddr *a)
{
	return ipaddr_is_v4(a) ? AF_INET : AF_INET6;
}

/* "192.0.2.1" or "2001:db8::1" (no brackets, no prefix) to an address; 0, or -1 if it is neither. */
int ipaddr_parse(const char *s, struct ipaddr *out);
/* Dotted quad for IPv4, RFC 5952 text for IPv6 ("" for none); buf of IPADDR_STRLEN bytes; returns buf. */
const char *ipaddr_str(const struct ipaddr *a, char *buf);
/* "192.0.2.1:80", or "[2001:db8::1]:80" for IPv6 (RFC 5952 section 6); port in host order; buf of
 * IPADDR_PORT_STRLEN bytes; returns buf. */
const char *ipaddr_port_str(const struct ipaddr *a, uint16_t port, char *buf);
/* A socket address of the address's own family (AF_INET or AF_INET6) with port (host order). */
socklen_t ipaddr_sockaddr(const struct ipaddr *a, uint16_t port, struct sockaddr_storage *ss);
/* The address of an AF_INET or AF_INET6 socket address (an IPv4-mapped IPv6 one counts as IPv4); 0 or -1. */
int ipaddr_from_sockaddr(const struct sockaddr *sa, struct ipaddr *out, uint16_t *port);
/* What a service or node address must not be: unspecified, loopback, link-local, multicast or reserved
 * (IPv4: 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, 224.0.0.0/3; IPv6: ::, ::1, fe80::/10, ff00::/8).
 * NULL if fine, else what it is ("a multicast address"). */
const char *ipaddr_unusable(const struct ipaddr *a);

#endif
