/* Text and socket-address conversions of struct ipaddr (ipaddr.h). */
#include <stdio.h>

#include "ipaddr.h"

int ipaddr_parse(const char *s, struct ipaddr *out)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (!s || !*s)
		return -1;
	if (inet_pton(AF_INET, s, &a4) == 1) {
		*out = ipaddr_from_v4(a4.s_addr);
		return 0;
	}
	if (inet_pton(AF_INET6, s, &a6) == 1) {
		*out = ipaddr_from_v6(a6.s6_addr);
		return 0;
	}
	return -1;
}

const char *ipaddr_str(const struct ipaddr *a, char *buf)
{
	buf[0] = 0;
	if (ipaddr_is_none(a))
		return buf;
	if (ipaddr_is_v4(a))
		inet_ntop(AF_INET, &a->w[3], buf, IPADDR_STRLEN);
	else
		inet_ntop(AF_INET6, a->b, buf, IPADDR_STRLEN);
	return buf;
}

const char *ipaddr_port_str(const struct ipaddr *a, uint16_t port, char *buf)
{
	char t[IPADDR_STRLEN];

	ipaddr_str(a, t);
	snprintf(buf, IPADDR_PORT_STRLEN, ipaddr_is_v4(a) ? "%s:%u" : "[%s]:%u", t, port);
	return buf;
}

socklen_t ipaddr_sockaddr(const struct ipaddr *a, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (ipaddr_is_v4(a)) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		s4->sin_addr.s_addr = ipaddr_v4(a);
		return sizeof(*s4);
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	memcpy(s6->sin6_addr.s6_addr, a->b, 16);
	return sizeof(*s6);
}

int ipaddr_from_sockaddr(const struct sockaddr *sa, struct ipaddr *out, uint16_t *port)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		*out = ipaddr_from_v4(s4->sin_addr.s_addr);
		if (port)
			*port = ntohs(s4->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		*out = ipaddr_from_v6(s6->sin6_addr.s6_addr);
		if (port)
			*port = ntohs(s6->sin6_port);
		return 0;
	}
	return -1;
}

const char *ipaddr_unusable(const struct ipaddr *a)
{
	if (ipaddr_is_v4(a)) {
		uint32_t h = ntohl(ipaddr_v4(a));
		if (h >> 24 == 0)
			return "an address in 0.0.0.0/8";
		if (h >> 24 == 127)
			return "a loopback address";
		if (h >> 16 == 0xa9fe)
			return "a link-local address";
		if (h >> 28 == 14)
			return "a multicast address";
		if (h >= 0xf0000000u)
			return "a reserved or broadcast address";
		return NULL;
	}
	if (ipaddr_is_none(a))
		return "the unspecified address";
	if (ipaddr_eq(a, &(struct ipaddr){ .b = { [15] = 1 } }))
		return "the loopback address";
	if (a->b[0] == 0xff)
		return "a multicast address";
	if (a->b[0] == 0xfe && (a->b[1] & 0xc0) == 0x80)
		return "a link-local address";
	return NULL;
}
