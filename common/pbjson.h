/* Writes any protobuf-c message as JSON, field names as in proto/ files, every field present (proto3
 * zero values included) so the JSON schema is stable and documented by the .proto files themselves. */
#ifndef DSR_PBJSON_H
#define DSR_PBJSON_H

#include <protobuf-c/protobuf-c.h>
#include <stdio.h>

void pbjson_write(FILE *out, const ProtobufCMessage *m, int indent);

#endif
